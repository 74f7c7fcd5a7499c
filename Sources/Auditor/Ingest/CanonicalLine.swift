import TallyCore
import TallyLedger
import UsageLog

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The ingest's fast path: a line laid out exactly as Tally's own writer lays it out (`UsageEvent.appendJSONLine`:
/// fixed field order, no spaces, ASCII strings without escapes, sorted tags) is read field by field straight into a
/// `ParsedEvent`, without building Strings for values already seen.
///
/// Anything else — another field order, whitespace, an escape, a non-ASCII byte, a value the rules refuse — makes
/// it give up (`nil`), and the line goes through the full reader (`UsageEvent(fastLine:)` and its one validator),
/// which accepts or quarantines it. So this path only ever accepts lines the full reader accepts, with the same
/// values; a test holds the two to that on real, hostile and mutated lines.
struct CanonicalLine {
    private var p: UnsafePointer<UInt8>
    private let end: UnsafePointer<UInt8>

    init(_ line: UnsafeBufferPointer<UInt8>) {
        p = line.baseAddress ?? UnsafePointer(bitPattern: 1)!
        end = p + line.count
    }

    /// The event, or nil when the line is not in the writer's exact layout or breaks a rule.
    static func read(_ line: UnsafeBufferPointer<UInt8>, number: Int, strings: inout StringTable) -> ParsedEvent? {
        guard line.count > 0 else { return nil }
        var reader = CanonicalLine(line)
        return reader.event(number: number, strings: &strings)
    }

    private mutating func event(number: Int, strings: inout StringTable) -> ParsedEvent? {
        var row = ParsedEvent()
        row.line = Int32(clamping: number)
        guard literal(#"{"v":"#), let version = integer(), version >= 1, version <= Int64(UsageEvent.currentVersion),
            literal(#","id":"#), let id = string(), id.count > 0
        else { return nil }
        if id.count == 36, let uuid = Self.uuid(id) {
            (row.idHigh, row.idLow) = uuid
        } else {
            row.idText = strings.intern(bytes: id)
        }
        guard literal(#","ts":"#), let ts = string(), let millis = Timestamp.parse(bytes: ts) else { return nil }
        row.timestamp = millis
        guard literal(#","collector":"#), let collector = string(),
            literal(#","key":"#), let key = string(),
            literal(#","provider":"#), let provider = string(),
            literal(#","endpoint":"#), let endpoint = string(), let endpointIndex = Self.index(of: endpoint, in: Self.endpoints),
            literal(#","model":"#), let model = string(),
            literal(#","status":"#), let status = integer(), (0...999).contains(status),
            literal(#","outcome":"#), let outcome = string(), let outcomeIndex = Self.index(of: outcome, in: Self.outcomes),
            literal(#","stream":"#)
        else { return nil }
        row.collector = strings.intern(bytes: collector)
        row.key = strings.intern(bytes: key)
        row.provider = strings.intern(bytes: provider)
        row.endpoint = UInt8(endpointIndex)
        row.model = strings.intern(bytes: model)
        row.status = Int16(status)
        row.outcome = UInt8(outcomeIndex)
        if literal("true") { row.stream = true } else if literal("false") { row.stream = false } else { return nil }

        guard literal(#","usage":"#) else { return nil }
        if !literal("null") {
            guard literal(#"{"input":"#), let input = integer(), literal(#","output":"#), let output = integer(),
                literal(#","cached_input":"#), let cached = integer(), literal(#","cache_write":"#), let write = integer(),
                literal(#","reasoning":"#), let reasoning = integer()
            else { return nil }
            var usage = UsageEvent.Usage(input: input, output: output, cachedInput: cached, cacheWrite: write, reasoning: reasoning)
            if literal(#","cache_write_1h":"#) {
                guard let oneHour = integer() else { return nil }
                usage.cacheWrite1h = oneHour
            }
            if literal(#","web_search_requests":"#) {
                guard let searches = integer() else { return nil }
                usage.webSearchRequests = searches
            }
            guard literal("}"), max(usage.cacheWrite1h, usage.webSearchRequests) <= ParsedEvent.maxExtraCount else { return nil }
            guard usage.violation == nil else { return nil }
            row.hasUsage = true
            row.tokens = usage
        }
        guard literal(#","latency_ms":"#), let latency = optionalInteger(),
            literal(#","ttft_ms":"#), let ttft = optionalInteger(),
            literal(#","prompt_hash":"#), let hash = optionalString(),
            literal(#","prompt_sim":"#), let sim = optionalString(),
            literal(#","prompt_chars":"#), let chars = optionalInteger(),
            literal(#","preview":"#), optionalString() != nil,
            literal(#","user":"#), let user = optionalString(),
            literal(#","tags":"#), let tags = tagObject(),
            literal(#","error":"#), let error = optionalString()
        else { return nil }
        if literal(#","service_tier":"#) {
            guard let tier = string() else { return nil }
            row.serviceTier = strings.intern(bytes: tier)
        }
        if literal(#","usage_estimated":true"#) { row.usageEstimated = true }
        guard literal("}"), p == end else { return nil }
        row.latencyMs = latency.value
        row.ttftMs = ttft.value
        if let hash = hash.value { row.promptHash = Self.hashPrefix(hash) }
        if let sim = sim.value {
            guard sim.count == 16, let value = Self.hex64(sim) else { return nil }
            row.promptSim = Int64(bitPattern: value)
        }
        row.promptChars = chars.value
        if let user = user.value { row.endUser = strings.intern(bytes: user) }
        if tags.count > 2 { row.tags = strings.intern(bytes: tags) }
        if let error = error.value { row.error = strings.intern(bytes: error) }
        return row
    }

    // MARK: Tokens

    @inline(__always)
    private mutating func literal(_ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard end - p >= count, memcmp(p, text.utf8Start, count) == 0 else { return false }
        p += count
        return true
    }

    /// A string of printable ASCII without escapes; its contents.
    @inline(__always)
    private mutating func string() -> UnsafeBufferPointer<UInt8>? {
        guard p < end, p.pointee == UInt8(ascii: "\"") else { return nil }
        let start = p + 1
        var q = start
        while q < end {
            let byte = q.pointee
            if byte == UInt8(ascii: "\"") {
                p = q + 1
                return UnsafeBufferPointer(start: start, count: q - start)
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 || byte >= 0x80 { return nil }
            q += 1
        }
        return nil
    }

    /// Wraps an optional value so that "null" (a value) and "not this layout" (nil) differ.
    struct Maybe<T> {
        var value: T?
    }

    private mutating func optionalString() -> Maybe<UnsafeBufferPointer<UInt8>>? {
        if literal("null") { return Maybe(value: nil) }
        return string().map { Maybe(value: $0) }
    }

    /// A JSON integer as the writer prints it: `0` or an optional `-` and digits without a leading zero, at most 18
    /// digits (longer ones go to the full reader, which knows Int64's exact limits).
    @inline(__always)
    private mutating func integer() -> Int64? {
        var q = p
        var negative = false
        if q < end, q.pointee == UInt8(ascii: "-") {
            negative = true
            q += 1
        }
        let digitsStart = q
        var value: Int64 = 0
        while q < end, q.pointee >= 0x30, q.pointee <= 0x39 {
            value = value &* 10 &+ Int64(q.pointee &- 0x30)
            q += 1
        }
        let digits = q - digitsStart
        guard digits > 0, digits <= 18, !(digits > 1 && digitsStart.pointee == 0x30) else { return nil }
        if q < end, q.pointee == UInt8(ascii: ".") || q.pointee == UInt8(ascii: "e") || q.pointee == UInt8(ascii: "E") { return nil }
        p = q
        return negative ? -value : value
    }

    private mutating func optionalInteger() -> Maybe<Int64>? {
        if literal("null") { return Maybe(value: nil) }
        return integer().map { Maybe(value: $0) }
    }

    /// `{}` or `{"k":"v",…}` with keys strictly increasing: then the bytes are already the canonical tag text.
    private mutating func tagObject() -> UnsafeBufferPointer<UInt8>? {
        let start = p
        guard literal("{") else { return nil }
        if literal("}") { return UnsafeBufferPointer(start: start, count: p - start) }
        var previous: UnsafeBufferPointer<UInt8>?
        while true {
            guard let key = string(), literal(":"), string() != nil else { return nil }
            if let previous {
                let common = min(previous.count, key.count)
                let order = memcmp(previous.baseAddress!, key.baseAddress!, common)
                guard order < 0 || (order == 0 && previous.count < key.count) else { return nil }
            }
            previous = key
            if literal("}") { return UnsafeBufferPointer(start: start, count: p - start) }
            guard literal(",") else { return nil }
        }
    }

    // MARK: Values

    static let endpoints = StoredEnums.endpoints.map { Array($0.rawValue.utf8) }
    static let outcomes = StoredEnums.outcomes.map { Array($0.rawValue.utf8) }

    @inline(__always)
    static func index(of bytes: UnsafeBufferPointer<UInt8>, in names: [[UInt8]]) -> Int? {
        names.firstIndex { name in
            name.count == bytes.count && name.withUnsafeBufferPointer { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
        }
    }

    /// `8-4-4-4-12` hex digits (36 bytes) to 16 bytes.
    static func uuid(_ b: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt64)? {
        guard b.count == 36, b[8] == 0x2D, b[13] == 0x2D, b[18] == 0x2D, b[23] == 0x2D else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        var digits = 0
        for i in 0..<36 where i != 8 && i != 13 && i != 18 && i != 23 {
            guard let nibble = Hex.value(b[i]) else { return nil }
            if digits < 16 { high = high << 4 | UInt64(nibble) } else { low = low << 4 | UInt64(nibble) }
            digits += 1
        }
        return (high, low)
    }

    /// 16 hex digits (either case), as `SimHash.parseHex` reads them.
    static func hex64(_ b: UnsafeBufferPointer<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        for byte in b {
            guard let nibble = Hex.value(byte) else { return nil }
            value = value << 4 | UInt64(nibble)
        }
        return value
    }

    /// The first 64 bits of a hex prompt hash, or FNV-1a of a value that is not hex (the ledger's `prompt_hash`).
    static func hashPrefix(_ b: UnsafeBufferPointer<UInt8>) -> Int64 {
        if b.count >= 16 {
            var value: UInt64 = 0
            var ok = true
            for i in 0..<16 {
                guard let nibble = Hex.value(b[i]) else {
                    ok = false
                    break
                }
                value = value << 4 | UInt64(nibble)
            }
            if ok { return Int64(bitPattern: value) }
        }
        var fnv: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in b { fnv = (fnv ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int64(bitPattern: fnv)
    }
}
