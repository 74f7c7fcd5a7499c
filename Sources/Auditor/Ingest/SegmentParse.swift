#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TallyCore
import UsageLog

/// A segment to read in this run, and where to start.
struct SegmentJob: Sendable {
    var file: SegmentFile
    /// The path as stored in the ledger: relative to the log directory.
    var relativePath: String
    var size: Int64
    var mtime: Int64
    /// Where an open segment's unread lines start (0 for a whole file).
    var offset: Int64
    /// The number of the first line to read.
    var firstLine: Int
}

/// One call, parsed and compacted: strings are indexes into the segment's `StringTable`, so a parsed segment holds
/// no per-event heap objects.
struct ParsedEvent: Sendable {
    /// The id as 16 bytes when it is a UUID; otherwise `idText` indexes its text.
    var idHigh: UInt64 = 0
    var idLow: UInt64 = 0
    var idText: Int32 = -1
    var timestamp: Int64 = 0
    var line: Int32 = 0
    var collector: Int32 = 0
    var key: Int32 = 0
    var provider: Int32 = 0
    var model: Int32 = 0
    var endUser: Int32 = -1
    var tags: Int32 = -1
    var error: Int32 = -1
    var endpoint: UInt8 = 0
    var outcome: UInt8 = 0
    var stream = false
    var hasUsage = false
    var status: Int16 = 0
    var input: Int64 = 0
    var output: Int64 = 0
    var cachedInput: Int64 = 0
    var cacheWrite: Int64 = 0
    var reasoning: Int64 = 0
    /// The optional integers, stored without Optional's padding: a bit in `present` says whether each is set.
    private var optionals: (Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0)
    private var present: UInt8 = 0

    var latencyMs: Int64? {
        get { present & 1 != 0 ? optionals.0 : nil }
        set { optionals.0 = newValue ?? 0; present = newValue == nil ? present & ~1 : present | 1 }
    }
    var ttftMs: Int64? {
        get { present & 2 != 0 ? optionals.1 : nil }
        set { optionals.1 = newValue ?? 0; present = newValue == nil ? present & ~2 : present | 2 }
    }
    var promptHash: Int64? {
        get { present & 4 != 0 ? optionals.2 : nil }
        set { optionals.2 = newValue ?? 0; present = newValue == nil ? present & ~4 : present | 4 }
    }
    var promptSim: Int64? {
        get { present & 8 != 0 ? optionals.3 : nil }
        set { optionals.3 = newValue ?? 0; present = newValue == nil ? present & ~8 : present | 8 }
    }
    var promptChars: Int64? {
        get { present & 16 != 0 ? optionals.4 : nil }
        set { optionals.4 = newValue ?? 0; present = newValue == nil ? present & ~16 : present | 16 }
    }
    /// Local day in the audit's timezone (set by `prepare`).
    var day: Int32 = 0
    /// Index into the segment's `priceEntries`, or -1 when unpriced or free (set by `prepare`).
    var priceRef: Int32 = -1
    /// Pico-units; 0 unless priced.
    var cost: Int64 = 0
}

/// A line set aside with the reason, the way the ledger's `quarantine` table keeps it.
struct QuarantinedLine: Sendable {
    var line: Int
    var kind: String
    var reason: String
    var length: Int
    /// The line's first 64 KiB.
    var text: [UInt8]
}

/// Distinct strings of one segment, each stored once. Values are looked up by their bytes, so a value already seen
/// costs a hash and a compare, not a String.
struct StringTable: Sendable {
    private(set) var strings: [String] = []
    private var bytes: [[UInt8]] = []
    private var hashes: [UInt64] = []
    /// Open addressing: each slot holds a string's index, or -1.
    private var slots = [Int32](repeating: -1, count: 64)

    mutating func intern(_ string: String) -> Int32 {
        var string = string
        return string.withUTF8 { intern(bytes: $0) }
    }

    /// The index of the string with these UTF-8 bytes (which the caller has checked are valid UTF-8).
    mutating func intern(bytes value: UnsafeBufferPointer<UInt8>) -> Int32 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in value { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
        while true {
            let index = slots[slot]
            if index < 0 { break }
            if hashes[Int(index)] == hash, bytes[Int(index)].count == value.count,
               bytes[Int(index)].withUnsafeBufferPointer({ value.count == 0 || memcmp($0.baseAddress!, value.baseAddress!, value.count) == 0 }) {
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

    subscript(_ index: Int32) -> String { strings[Int(index)] }
}

/// What reading one segment gave: its events, its bad lines and what the reader saw.
struct ParsedSegment: Sendable {
    var job: SegmentJob
    var events: [ParsedEvent] = []
    var strings = StringTable()
    var quarantined: [QuarantinedLine] = []
    var summary = SegmentReadSummary()
    /// The file vanished between listing and reading (an open segment closed meanwhile): nothing was read.
    var vanished = false
    /// The price entries its calls use, the sums per rollup group, and who each key belongs to (set by `prepare`).
    var priceEntries: [PriceEntry] = []
    var rollups: [LocalRollupKey: RollupSums] = [:]
    var attributions: [Int32: Attribution] = [:]

    /// Where the next read of this (open) segment starts: just after its last complete line.
    var endOffset: Int64 { job.offset + summary.bytes - Int64(summary.skippedTailBytes) }
    /// The number of the last line read, this run or before.
    var lastLine: Int { max(job.firstLine - 1, summary.lastLineNumber) }

    /// The most tokens one call may report; more is refused as implausible, which also keeps every sum in 64 bits.
    static let maxTokens: Int64 = 10_000_000_000

    /// Reads and parses `job`'s lines. Only I/O failures throw; bad lines are quarantined.
    static func parse(_ job: SegmentJob) throws(FileIOError) -> ParsedSegment {
        var parsed = ParsedSegment(job: job)
        parsed.events.reserveCapacity(Int(min(job.size - job.offset, 256 << 20) / (job.file.isClosed ? 60 : 500)))
        do {
            parsed.summary = try SegmentReader.read(path: job.file.path, from: job.offset, firstLineNumber: job.firstLine) { number, line in
                parsed.accept(number: number, line: line)
            }
        } catch let error as FileIOError {
            if error.errno == ENOENT, !job.file.isClosed {
                parsed.vanished = true
                return parsed
            }
            throw error
        } catch {
            throw FileIOError(code: .io, message: "\(job.file.path): \(error)")
        }
        return parsed
    }

    /// Takes one line: through the fast path when it is in the writer's own layout, else through the full reader.
    mutating func accept(number: Int, line: UnsafeBufferPointer<UInt8>, fastPath: Bool = true) {
        if fastPath, let row = CanonicalLine.read(line, number: number, strings: &strings) {
            let biggest = max(row.input, row.output, row.cachedInput, row.cacheWrite, row.reasoning)
            if biggest <= Self.maxTokens {
                events.append(row)
                return
            }
        }
        let event: UsageEvent
        do {
            event = try UsageEvent(fastLine: line)
        } catch {
            quarantine(number: number, line: line, kind: error.kind.rawValue, reason: error.message)
            return
        }
        if let usage = event.usage,
           max(usage.input, usage.output, usage.cachedInput, usage.cacheWrite, usage.reasoning) > Self.maxTokens {
            quarantine(number: number, line: line, kind: LineError.Kind.invalidUsage.rawValue,
                       reason: "a token count above \(Self.maxTokens) is not plausible for one call")
            return
        }
        var row = ParsedEvent()
        if let (high, low) = Self.uuid(event.id) {
            row.idHigh = high
            row.idLow = low
        } else {
            row.idText = strings.intern(event.id)
        }
        row.timestamp = event.timestamp
        row.line = Int32(clamping: number)
        row.collector = strings.intern(event.collector)
        row.key = strings.intern(event.key)
        row.provider = strings.intern(event.provider)
        row.model = strings.intern(event.model)
        if let user = event.user { row.endUser = strings.intern(user) }
        if !event.tags.isEmpty { row.tags = strings.intern(Self.canonicalTags(event.tags)) }
        if let error = event.error { row.error = strings.intern(error) }
        row.endpoint = UInt8(StoredEnums.endpoints.firstIndex(of: event.endpoint)!)
        row.outcome = UInt8(StoredEnums.outcomes.firstIndex(of: event.outcome)!)
        row.stream = event.stream
        row.status = Int16(event.status)
        if let usage = event.usage {
            row.hasUsage = true
            row.input = usage.input
            row.output = usage.output
            row.cachedInput = usage.cachedInput
            row.cacheWrite = usage.cacheWrite
            row.reasoning = usage.reasoning
        }
        row.latencyMs = event.latencyMs
        row.ttftMs = event.ttftMs
        row.promptHash = event.promptHash.map(Self.hashPrefix)
        row.promptSim = event.promptSim.map { Int64(bitPattern: $0) }
        row.promptChars = event.promptChars
        events.append(row)
    }

    mutating func quarantine(number: Int, line: UnsafeBufferPointer<UInt8>, kind: String, reason: String) {
        quarantined.append(QuarantinedLine(line: number, kind: kind, reason: reason, length: line.count,
                                           text: Array(line.prefix(SegmentReadSummary.tailKeep))))
    }

    /// The 16 bytes of a UUID written `8-4-4-4-12` in hex (either case), or nil.
    static func uuid(_ text: String) -> (UInt64, UInt64)? {
        var text = text
        return text.withUTF8 { $0.count == 36 ? CanonicalLine.uuid($0) : nil }
    }

    /// The first 64 bits of a hex prompt hash; a value that is not hex is folded with FNV-1a instead, so that equal
    /// values still match.
    static func hashPrefix(_ text: String) -> Int64 {
        var text = text
        return text.withUTF8 { CanonicalLine.hashPrefix($0) }
    }

    /// Tags as one canonical JSON object, keys sorted: the form the ledger stores a tag set in.
    static func canonicalTags(_ tags: [String: String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (i, key) in tags.keys.sorted().enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.appendString(tags[key]!, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
