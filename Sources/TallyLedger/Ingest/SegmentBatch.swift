import TallyCore
import UsageLog

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// What the ingest hands the ledger for one segment: its calls compacted, their strings, prices, rollup sums, owners
// and bad lines. The Auditor reads and prepares it (`ParsedSegment.parse`, `prepare`); `IngestWriter` stores it.

/// A segment to read in this run, and where to start.
package struct SegmentJob: Sendable {
    package var file: SegmentFile
    /// The path as stored in the ledger: relative to the log directory.
    package var relativePath: String
    package var size: Int64
    package var mtime: Int64
    /// Where an open segment's unread lines start (0 for a whole file).
    package var offset: Int64
    /// The number of the first line to read.
    package var firstLine: Int

    package init(file: SegmentFile, relativePath: String, size: Int64, mtime: Int64, offset: Int64, firstLine: Int) {
        self.file = file
        self.relativePath = relativePath
        self.size = size
        self.mtime = mtime
        self.offset = offset
        self.firstLine = firstLine
    }
}

/// One call, parsed and compacted: strings are indexes into the segment's `StringTable`, so a parsed segment holds
/// no per-event heap objects.
package struct ParsedEvent: Sendable {
    /// The id as 16 bytes when it is a UUID; otherwise `idText` indexes its text.
    package var idHigh: UInt64 = 0
    package var idLow: UInt64 = 0
    package var idText: Int32 = -1
    package var timestamp: Int64 = 0
    package var line: Int32 = 0
    package var collector: Int32 = 0
    package var key: Int32 = 0
    package var provider: Int32 = 0
    package var model: Int32 = 0
    package var endUser: Int32 = -1
    package var tags: Int32 = -1
    package var error: Int32 = -1
    /// The served service tier as reported, or -1.
    package var serviceTier: Int32 = -1
    package var endpoint: UInt8 = 0
    package var outcome: UInt8 = 0
    package var stream = false
    package var hasUsage = false
    /// `serviceTier` is not a name of the standard tier: `rollup_daily_pricing` keeps the call apart by it (set by
    /// `prepare`).
    package var tierApart = false
    /// How the price was applied (`PriceNotes` raw value): `usageEstimated` from the line, the rest set by `prepare`.
    package var priceNotes: UInt8 = 0
    package var status: Int16 = 0
    /// The five token counts; the one-hour writes and web searches, rarely set and never near 2³², in 32 bits each, so
    /// that a segment's million events stay small (`tokens` gives them all).
    private var counts: (Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0)
    private var extras: (UInt32, UInt32) = (0, 0)

    /// The largest one-hour write or web-search count a parsed event holds; larger is refused as implausible.
    package static let maxExtraCount = Int64(UInt32.max)

    /// The call's usage. Setting it needs `cacheWrite1h` and `webSearchRequests` within `maxExtraCount` (the readers
    /// refuse larger ones).
    package var tokens: TokenCounts {
        get {
            TokenCounts(
                input: counts.0, output: counts.1, cachedInput: counts.2, cacheWrite: counts.3, reasoning: counts.4,
                cacheWrite1h: Int64(extras.0), webSearchRequests: Int64(extras.1))
        }
        set {
            counts = (newValue.input, newValue.output, newValue.cachedInput, newValue.cacheWrite, newValue.reasoning)
            extras = (UInt32(clamping: newValue.cacheWrite1h), UInt32(clamping: newValue.webSearchRequests))
        }
    }
    /// The optional integers, stored without Optional's padding: a bit in `present` says whether each is set.
    private var optionals: (Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0)
    private var present: UInt8 = 0

    package var latencyMs: Int64? {
        get { present & 1 != 0 ? optionals.0 : nil }
        set {
            optionals.0 = newValue ?? 0
            present = newValue == nil ? present & ~1 : present | 1
        }
    }
    package var ttftMs: Int64? {
        get { present & 2 != 0 ? optionals.1 : nil }
        set {
            optionals.1 = newValue ?? 0
            present = newValue == nil ? present & ~2 : present | 2
        }
    }
    package var promptHash: Int64? {
        get { present & 4 != 0 ? optionals.2 : nil }
        set {
            optionals.2 = newValue ?? 0
            present = newValue == nil ? present & ~4 : present | 4
        }
    }
    package var promptSim: Int64? {
        get { present & 8 != 0 ? optionals.3 : nil }
        set {
            optionals.3 = newValue ?? 0
            present = newValue == nil ? present & ~8 : present | 8
        }
    }
    package var promptChars: Int64? {
        get { present & 16 != 0 ? optionals.4 : nil }
        set {
            optionals.4 = newValue ?? 0
            present = newValue == nil ? present & ~16 : present | 16
        }
    }
    /// Local day in the audit's timezone (set by `prepare`).
    package var day: Int32 = 0
    /// Index into the segment's `priceEntries`, or -1 when unpriced or free (set by `prepare`).
    package var priceRef: Int32 = -1
    /// Pico-units: the cost of a priced call (`priceRef` ≥ 0); for an unpriced one, what it counts toward budgets
    /// (`PriceBook.estimate`, with `PriceNotes.costEstimated`); else 0.
    package var cost: Int64 = 0

    /// The budget estimate of an unpriced call, else 0.
    package var estimate: Int64 { priceRef < 0 ? cost : 0 }
    /// The cost of a priced call, else 0.
    package var pricedCost: Int64 { priceRef >= 0 ? cost : 0 }
    /// Whether the line said its usage is the collector's estimate.
    package var usageEstimated: Bool {
        get { priceNotes & PriceNotes.usageEstimated.rawValue != 0 }
        set { priceNotes = newValue ? priceNotes | PriceNotes.usageEstimated.rawValue : priceNotes & ~PriceNotes.usageEstimated.rawValue }
    }

    package init() {}
}

/// A line set aside with the reason, the way the ledger's `quarantine` table keeps it.
package struct QuarantinedLine: Sendable {
    package var line: Int
    package var kind: String
    package var reason: String
    package var length: Int
    /// The line's first 64 KiB.
    package var text: [UInt8]
    /// The time the line's data is from: its `ts` where that can still be read, else nil (the segment's time is used).
    package var ts: Int64?

    package init(line: Int, kind: String, reason: String, length: Int, text: [UInt8], ts: Int64? = nil) {
        self.line = line
        self.kind = kind
        self.reason = reason
        self.length = length
        self.text = text
        self.ts = ts
    }

    /// The `ts` of a log line that may not parse as a whole: the first `"ts"` member whose value is a readable time.
    package static func dataTime(_ line: UnsafeBufferPointer<UInt8>) -> Int64? {
        let key = Array(#""ts""#.utf8)
        var i = 0
        while i + key.count < line.count {
            guard line[i] == key[0], line[i + 1] == key[1], line[i + 2] == key[2], line[i + 3] == key[3] else {
                i += 1
                continue
            }
            var j = i + key.count
            while j < line.count, line[j] == 0x20 || line[j] == 0x09 { j += 1 }
            if j < line.count, line[j] == UInt8(ascii: ":") {
                j += 1
                while j < line.count, line[j] == 0x20 || line[j] == 0x09 { j += 1 }
                if j < line.count, line[j] == UInt8(ascii: "\"") {
                    let start = j + 1
                    var end = start
                    while end < line.count, end - start < 64, line[end] != UInt8(ascii: "\"") { end += 1 }
                    if end < line.count, line[end] == UInt8(ascii: "\""),
                        let millis = Timestamp.parse(bytes: UnsafeBufferPointer(rebasing: line[start..<end]))
                    {
                        return millis
                    }
                }
            }
            i += key.count
        }
        return nil
    }
}

/// Distinct strings of one segment, each stored once. Values are looked up by their bytes, so a value already seen
/// costs a hash and a compare, not a String.
package struct StringTable: Sendable {
    package private(set) var strings: [String] = []
    private var bytes: [[UInt8]] = []
    private var hashes: [UInt64] = []
    /// Open addressing: each slot holds a string's index, or -1.
    private var slots = [Int32](repeating: -1, count: 64)

    package mutating func intern(_ string: String) -> Int32 {
        var string = string
        return string.withUTF8 { intern(bytes: $0) }
    }

    /// The index of the string with these UTF-8 bytes (which the caller has checked are valid UTF-8).
    package mutating func intern(bytes value: UnsafeBufferPointer<UInt8>) -> Int32 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in value { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
        while true {
            let index = slots[slot]
            if index < 0 { break }
            if hashes[Int(index)] == hash, bytes[Int(index)].count == value.count,
                bytes[Int(index)].withUnsafeBufferPointer({
                    value.count == 0 || memcmp($0.baseAddress!, value.baseAddress!, value.count) == 0
                })
            {
                return index
            }
            slot = (slot + 1) & mask
        }
        let index = Int32(strings.count)
        strings.append(String(decoding: value, as: UTF8.self))
        bytes.append(Array(value))
        hashes.append(hash)
        slots[slot] = index
        if strings.count * 2 > slots.count { grow() }
        return index
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        let mask = slots.count - 1
        for (index, hash) in hashes.enumerated() {
            var slot = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(index)
        }
    }

    package subscript(_ index: Int32) -> String { strings[Int(index)] }
}

/// What reading one segment gave: its events, its bad lines and what the reader saw.
package struct ParsedSegment: Sendable {
    package var job: SegmentJob
    package var events: [ParsedEvent] = []
    package var strings = StringTable()
    package var quarantined: [QuarantinedLine] = []
    package var summary = SegmentReadSummary()
    /// The file vanished between listing and reading (an open segment closed meanwhile): nothing was read.
    package var vanished = false
    /// The price entries its calls use, the sums per rollup group, and who each key belongs to (set by `prepare`).
    package var priceRows: [StoredPrice] = []
    package var rollups: [LocalRollupKey: RollupSums] = [:]
    package var attributions: [Int32: Attribution] = [:]

    package init(job: SegmentJob) {
        self.job = job
    }

    /// Where the next read of this (open) segment starts: just after its last complete line.
    package var endOffset: Int64 { job.offset + summary.bytes - Int64(summary.skippedTailBytes) }
    /// The number of the last line read, this run or before.
    package var lastLine: Int { max(job.firstLine - 1, summary.lastLineNumber) }
}

/// A rollup group as a parse task sees it: string indexes of its segment, not ledger ids.
package struct LocalRollupKey: Hashable {
    package var day: Int32
    package var key: Int32
    package var provider: Int32
    package var model: Int32
    package var endUser: Int32
    package var tags: Int32
    package var priced: Bool
    /// The served tier's string index, or -1.
    package var serviceTier: Int32
    /// `PriceNotes` raw value.
    package var notes: UInt8

    package init(_ event: ParsedEvent) {
        day = event.day
        key = event.key
        provider = event.provider
        model = event.model
        endUser = event.endUser
        tags = event.tags
        priced = !(event.hasUsage && event.priceRef < 0)
        serviceTier = event.tierApart ? event.serviceTier : -1
        notes = event.priceNotes
    }
}

extension RollupSums {
    package mutating func add(_ event: ParsedEvent) {
        add(outcome: Int(event.outcome), tokens: event.tokens, cost: event.pricedCost, estimate: event.estimate)
    }

    /// Takes back an event that turned out to be in the ledger already.
    package mutating func remove(_ event: ParsedEvent) {
        var sums = RollupSums()
        sums.add(event)
        merge(sums.negated)
    }

    package mutating func merge(_ other: RollupSums) {
        requests += other.requests
        failed += other.failed
        rejected += other.rejected
        tokens += other.tokens
        cost += other.cost
        estimate += other.estimate
    }
}
