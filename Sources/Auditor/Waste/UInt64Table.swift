import CMemory
import TallyLedger

/// An open-addressing hash table from 64-bit keys to values, for the waste scan's millions of lookups: one multiply
/// to hash (the keys are already well mixed, being prompt hashes), linear probing, key and value side by side so a
/// lookup touches one cache line, no per-entry allocation. Key 0 marks a free slot, so a key of 0 is stored as 1.
/// Entries are never removed one by one; `filter` drops those it is told to, in place.
struct UInt64Table<Value> {
    private struct Entry {
        var key: UInt64
        var value: Value
    }

    private var slots: [Entry]
    private var mask: Int
    private let placeholder: Value
    private(set) var count = 0

    init(capacity: Int = 1 << 16, placeholder: Value) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: Entry(key: 0, value: placeholder), count: size)
        mask = size - 1
        self.placeholder = placeholder
    }

    @inline(__always) private func start(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 20) & mask }

    /// Starts loading the slot where a lookup of `key` begins, so that a lookup a little later finds it in cache.
    @inline(__always) func prefetch(_ key: UInt64) {
        let key = key == 0 ? 1 : key
        slots.withUnsafeBufferPointer { tally_prefetch($0.baseAddress! + start(key)) }
    }

    /// The position of `key`, if present.
    func find(_ key: UInt64) -> Int? {
        let key = key == 0 ? 1 : key
        var i = start(key)
        while true {
            let found = slots[i].key
            if found == key { return i }
            if found == 0 { return nil }
            i = (i + 1) & mask
        }
    }

    /// The position of `key`, inserting `value` first when it is absent.
    mutating func findOrInsert(_ key: UInt64, _ value: @autoclosure () -> Value) -> Int {
        if (count + 1) * 4 > slots.count * 3 { rebuild(capacity: slots.count) { _ in true } }
        let key = key == 0 ? 1 : key
        var i = start(key)
        while true {
            let found = slots[i].key
            if found == key { return i }
            if found == 0 { break }
            i = (i + 1) & mask
        }
        slots[i] = Entry(key: key, value: value())
        count += 1
        return i
    }

    subscript(position: Int) -> Value {
        get { slots[position].value }
        _modify { yield &slots[position].value }
    }

    /// Keeps only the entries `keep` accepts, in place: a copy of a table of millions of entries would double its
    /// memory for the moment of the sweep. The table keeps its size: a table swept now and then refills to about the
    /// same size, and growing it again would cost a rebuild per doubling.
    mutating func filter(_ keep: (Value) -> Bool) {
        // Linear probing stays correct if every run of entries is compacted from its start: begin after a free slot,
        // go once round, drop what is not kept and move each kept entry to the first free slot of its probe sequence
        // (its own slot, or one before it that an earlier drop freed).
        guard let free = slots.firstIndex(where: { $0.key == 0 }) else { return rebuild(capacity: slots.count / 2, keep) }
        var i = (free + 1) & mask
        while i != free {
            if slots[i].key != 0 {
                let entry = slots[i]
                slots[i] = Entry(key: 0, value: placeholder)
                if keep(entry.value) {
                    var j = start(entry.key)
                    while slots[j].key != 0 { j = (j + 1) & mask }
                    slots[j] = entry
                } else {
                    count -= 1
                }
            }
            i = (i + 1) & mask
        }
    }

    private mutating func rebuild(capacity: Int, _ keep: (Value) -> Bool) {
        var next = UInt64Table(capacity: capacity, placeholder: placeholder)
        for entry in slots where entry.key != 0 && keep(entry.value) {
            var i = next.start(entry.key)
            while next.slots[i].key != 0 { i = (i + 1) & next.mask }
            next.slots[i] = entry
            next.count += 1
        }
        self = next
    }
}
