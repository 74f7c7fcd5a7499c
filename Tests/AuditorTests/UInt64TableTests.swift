import Testing

@testable import Auditor
@testable import TallyLedger

/// The waste scan's hash table: what it keeps through sweeps is still found, what it drops is gone.
@Suite("UInt64Table")
struct UInt64TableTests {
    /// A fixed sequence of well-mixed keys (the scan's keys are HMACs), with 0 among them (stored as 1).
    static func keys(_ count: Int, seed: UInt64) -> [UInt64] {
        var state = seed
        return (0..<count).map { i in
            if i == 7 { return 0 }
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test(arguments: [(40, 12), (3_000, 1_000), (100_000, 30_000)])
    func sweepsInPlaceKeepWhatTheyKeepFindable(count: Int, capacity: Int) {
        // Filled to its load limit, so runs of entries are long and wrap round the end of the slots.
        var table = UInt64Table(capacity: capacity, placeholder: -1)
        let keys = Self.keys(count, seed: UInt64(count))
        for (i, key) in keys.enumerated() { table[table.findOrInsert(key, i)] = i }
        #expect(table.count == count)
        var kept = Array(repeating: true, count: count)
        for round in 1...3 {
            table.filter { value in value % (round + 2) != 0 }
            for i in keys.indices where i % (round + 2) == 0 { kept[i] = false }
            #expect(table.count == kept.filter { $0 }.count)
            for (i, key) in keys.enumerated() {
                let found = table.find(key)
                if kept[i] {
                    #expect(found.map { table[$0] } == i, "round \(round): key \(i) lost")
                } else {
                    #expect(found == nil, "round \(round): key \(i) was dropped but is found")
                }
            }
        }
        // Refilled after the sweeps: old and new entries side by side.
        let more = Self.keys(count / 2, seed: UInt64(count) + 1)
        for (i, key) in more.enumerated() where i != 7 { table[table.findOrInsert(key, count + i)] = count + i }
        for (i, key) in more.enumerated() where i != 7 { #expect(table.find(key).map { table[$0] } == count + i) }
        for (i, key) in keys.enumerated() where kept[i] { #expect(table.find(key).map { table[$0] } == i) }
    }
}
