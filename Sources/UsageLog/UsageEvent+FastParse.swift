#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A single-pass reader of v1 lines for the ingest: it scans the bytes once, knows the field set, and builds no
/// JSON tree. It accepts and refuses exactly what `UsageEvent(jsonLine:)` does (tests compare both on fuzzed and
/// hostile lines); the error kinds match, the messages may differ in wording.
extension UsageEvent {
    public init(fastLine bytes: UnsafeBufferPointer<UInt8>) throws(LineError) {
        var scanner = LineScanner(bytes: bytes)
        self = try scanner.event()
    }
}

struct LineScanner {
    var parser: JSONParser

    init(bytes: UnsafeBufferPointer<UInt8>) {
        parser = JSONParser(bytes: bytes)
    }

    var bytes: UnsafeBufferPointer<UInt8> { parser.bytes }

    /// A value seen for a field, before it is checked.
    enum Raw {
        case null
        case string(String)
        case integer(Int64)
        /// Any other value, already checked to be valid JSON.
        case other
    }

    private func notJSON(_ message: String) -> LineError {
        LineError(.notJSON, "not JSON: \(message) at byte \(parser.index)")
    }

    mutating func event() throws(LineError) -> UsageEvent {
        parser.skipWhitespace()
        guard parser.index < bytes.count else { throw notJSON("unexpected end of input") }
        guard bytes[parser.index] == UInt8(ascii: "{") else {
            // Valid JSON that is not an object is refused as such; anything else as not JSON.
            do {
                _ = try parser.parseValue(depth: 0)
                parser.skipWhitespace()
                if parser.index != bytes.count { throw JSONParseError(offset: parser.index, message: "unexpected text after the JSON value") }
            } catch {
                throw LineError(.notJSON, "not JSON: \(error)")
            }
            throw LineError(.notJSON, "the line is JSON but not an object")
        }
        parser.index += 1

        var fields = [Raw?](repeating: nil, count: Field.allCases.count)
        var usage: UsageEvent.Usage??
        var usageError: LineError?
        var tags: [String: String] = [:]
        var tagsError: LineError?
        var streamValue: Bool??
        var sawStreamOther = false

        var seenKnown: UInt32 = 0
        var unknownNames = Set<String>()
        var duplicate: String?
        try members { (field: Field?, name: () -> String, scanner: inout LineScanner) throws(LineError) in
            if duplicate == nil {
                if let field {
                    let bit = UInt32(1) << UInt32(field.index)
                    if seenKnown & bit != 0 { duplicate = field.rawValue }
                    seenKnown |= bit
                } else if !unknownNames.insert(name()).inserted {
                    duplicate = name()
                }
            }
            switch field {
            case .usage?:
                (usage, usageError) = try scanner.usageValue()
            case .tags?:
                (tags, tagsError) = try scanner.tagsValue()
            case .stream?:
                let value = try scanner.anyValue()
                switch value {
                case .bool(let b): streamValue = .some(b); sawStreamOther = false
                case .null: streamValue = .some(nil); sawStreamOther = false
                default: sawStreamOther = true; streamValue = nil
                }
            case let field?:
                fields[field.index] = try scanner.rawValue()
            case nil:
                _ = try scanner.anyValue()
            }
        }
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw notJSON("unexpected text after the JSON value") }
        if let duplicate { throw LineError(.invalidField, "field '\(duplicate.prefix(40))' appears twice") }

        // The same checks, in the same order, as `UsageEvent(json:)`.
        func required(_ field: Field) throws(LineError) -> Raw {
            guard let raw = fields[field.index] else { throw LineError(.missingField, "missing required field '\(field.rawValue)'") }
            if case .null = raw { throw LineError(.missingField, "missing required field '\(field.rawValue)'") }
            return raw
        }
        func string(_ field: Field) throws(LineError) -> String {
            guard case .string(let s) = try required(field) else { throw LineError(.invalidField, "field '\(field.rawValue)' must be a string") }
            return s
        }
        func optionalString(_ field: Field) throws(LineError) -> String? {
            switch fields[field.index] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            default: throw LineError(.invalidField, "field '\(field.rawValue)' must be a string or null")
            }
        }
        func optionalInteger(_ field: Field) throws(LineError) -> Int64? {
            switch fields[field.index] {
            case nil, .null?: return nil
            case .integer(let n)?: return n
            default: throw LineError(.invalidField, "field '\(field.rawValue)' must be an integer or null")
            }
        }

        guard case .integer(let version) = try required(.v) else { throw LineError(.invalidField, "field 'v' must be an integer") }
        guard version <= Int64(UsageEvent.currentVersion) else {
            throw LineError(.futureVersion, "format version \(version) is newer than this reader (v\(UsageEvent.currentVersion))")
        }
        guard version >= 1 else { throw LineError(.invalidField, "field 'v' must be 1 or more") }
        let id = try string(.id)
        guard !id.isEmpty else { throw LineError(.invalidField, "field 'id' must not be empty") }
        let ts = try string(.ts)
        guard let timestamp = Timestamp.parse(ts) else { throw LineError(.invalidField, "field 'ts' is not an RFC 3339 time: \(ts.prefix(40))") }
        let collector = try string(.collector)
        let key = try string(.key)
        let provider = try string(.provider)
        let endpointText = try string(.endpoint)
        guard let endpoint = UsageEvent.Endpoint(rawValue: endpointText) else {
            throw LineError(.invalidField, "field 'endpoint' has unknown value '\(endpointText.prefix(40))'")
        }
        let model = try string(.model)
        guard case .integer(let status) = try required(.status), (0...999).contains(status) else {
            throw LineError(.invalidField, "field 'status' must be an HTTP status code")
        }
        let outcomeText = try string(.outcome)
        guard let outcome = UsageEvent.Outcome(rawValue: outcomeText) else {
            throw LineError(.invalidField, "field 'outcome' has unknown value '\(outcomeText.prefix(40))'")
        }
        if sawStreamOther { throw LineError(.invalidField, "field 'stream' must be true or false") }
        let stream = (streamValue ?? nil) ?? false
        if let usageError { throw usageError }
        let latency = try optionalInteger(.latencyMs)
        let ttft = try optionalInteger(.ttftMs)
        let hash = try optionalString(.promptHash)
        var sim: UInt64?
        if let text = try optionalString(.promptSim) {
            guard let value = SimHash.parseHex(text) else { throw LineError(.invalidField, "field 'prompt_sim' must be 16 hex digits") }
            sim = value
        }
        let chars = try optionalInteger(.promptChars)
        let preview = try optionalString(.preview)
        let user = try optionalString(.user)
        if let tagsError { throw tagsError }
        let error = try optionalString(.error)
        return UsageEvent(version: Int(version), id: id, timestamp: timestamp, collector: collector, key: key, provider: provider,
                          endpoint: endpoint, model: model, status: Int(status), outcome: outcome, stream: stream,
                          usage: usage ?? nil, latencyMs: latency, ttftMs: ttft, promptHash: hash, promptSim: sim,
                          promptChars: chars, preview: preview, user: user, tags: tags, error: error)
    }

    enum Field: String, CaseIterable {
        case v, id, ts, collector, key, provider, endpoint, model, status, outcome, stream, usage, tags, preview, user, error
        case latencyMs = "latency_ms"
        case ttftMs = "ttft_ms"
        case promptHash = "prompt_hash"
        case promptSim = "prompt_sim"
        case promptChars = "prompt_chars"

        /// The field's slot in the scanner's value array.
        var index: Int {
            switch self {
            case .v: 0
            case .id: 1
            case .ts: 2
            case .collector: 3
            case .key: 4
            case .provider: 5
            case .endpoint: 6
            case .model: 7
            case .status: 8
            case .outcome: 9
            case .stream: 10
            case .usage: 11
            case .tags: 12
            case .preview: 13
            case .user: 14
            case .error: 15
            case .latencyMs: 16
            case .ttftMs: 17
            case .promptHash: 18
            case .promptSim: 19
            case .promptChars: 20
            }
        }

        /// The field a raw (unescaped) member name names, without making a String.
        static func match(_ name: UnsafeBufferPointer<UInt8>) -> Field? {
            func equals(_ literal: StaticString) -> Bool {
                literal.utf8CodeUnitCount == name.count && memcmp(literal.utf8Start, name.baseAddress!, name.count) == 0
            }
            switch name.count {
            case 1: return equals("v") ? .v : nil
            case 2: return equals("id") ? .id : equals("ts") ? .ts : nil
            case 3: return equals("key") ? .key : nil
            case 4: return equals("tags") ? .tags : equals("user") ? .user : nil
            case 5: return equals("model") ? .model : equals("usage") ? .usage : equals("error") ? .error : nil
            case 6: return equals("status") ? .status : equals("stream") ? .stream : nil
            case 7: return equals("outcome") ? .outcome : equals("ttft_ms") ? .ttftMs : equals("preview") ? .preview : nil
            case 8: return equals("provider") ? .provider : equals("endpoint") ? .endpoint : nil
            case 9: return equals("collector") ? .collector : nil
            case 10: return equals("latency_ms") ? .latencyMs : equals("prompt_sim") ? .promptSim : nil
            case 11: return equals("prompt_hash") ? .promptHash : nil
            case 12: return equals("prompt_chars") ? .promptChars : nil
            default: return nil
            }
        }
    }

    /// Walks the members of the object whose `{` was just consumed, calling `body` with each member's field (nil when
    /// unknown) and a way to get its name as a String (made only when asked for).
    mutating func members(_ body: (Field?, () -> String, inout LineScanner) throws(LineError) -> Void) throws(LineError) {
        parser.skipWhitespace()
        if parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: "}") {
            parser.index += 1
            return
        }
        while true {
            parser.skipWhitespace()
            guard parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: "\"") else { throw notJSON("expected a member name") }
            // Known names have no escapes: match their raw bytes; anything else goes through the full string parser.
            let nameStart = parser.index + 1
            var nameEnd = nameStart
            while nameEnd < bytes.count, bytes[nameEnd] != UInt8(ascii: "\""), bytes[nameEnd] != UInt8(ascii: "\\"), bytes[nameEnd] >= 0x20 { nameEnd += 1 }
            let field: Field?
            let name: String
            if nameEnd < bytes.count, bytes[nameEnd] == UInt8(ascii: "\""),
               let known = Field.match(UnsafeBufferPointer(rebasing: bytes[nameStart..<nameEnd])) {
                field = known
                name = known.rawValue
                parser.index = nameEnd + 1
            } else {
                do { name = try parser.parseString() } catch { throw LineError(.notJSON, "not JSON: \(error)") }
                field = Field(rawValue: name)
            }
            parser.skipWhitespace()
            guard parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: ":") else { throw notJSON("expected ':'") }
            parser.index += 1
            parser.skipWhitespace()
            try body(field, { name }, &self)
            parser.skipWhitespace()
            guard parser.index < bytes.count else { throw notJSON("unexpected end of input") }
            if bytes[parser.index] == UInt8(ascii: ",") { parser.index += 1; continue }
            if bytes[parser.index] == UInt8(ascii: "}") { parser.index += 1; return }
            throw notJSON("expected ',' or '}'")
        }
    }

    mutating func anyValue() throws(LineError) -> JSONValue {
        do { return try parser.parseValue(depth: 1) } catch { throw LineError(.notJSON, "not JSON: \(error)") }
    }

    /// A scalar field: strings and plain integers without building a tree; anything else checked and set aside.
    mutating func rawValue() throws(LineError) -> Raw {
        guard parser.index < bytes.count else { throw notJSON("unexpected end of input") }
        let c = bytes[parser.index]
        if c == UInt8(ascii: "\"") {
            do { return .string(try parser.parseString()) } catch { throw LineError(.notJSON, "not JSON: \(error)") }
        }
        if c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39) {
            if case .number(let literal) = try anyValue() { return Int64(literal).map(Raw.integer) ?? .other }
            return .other
        }
        switch try anyValue() {
        case .null: return .null
        default: return .other
        }
    }

    /// `usage`: an object of counts or null; a problem inside is reported after the required fields, as the
    /// generic reader does.
    mutating func usageValue() throws(LineError) -> (UsageEvent.Usage??, LineError?) {
        let value = try anyValue()
        if value.isNull { return (.some(nil), nil) }
        guard case .object = value else { return (nil, LineError(.invalidField, "field 'usage' must be an object or null")) }
        func count(_ name: String) -> Result<Int64, LineError> {
            guard let v = value[name], !v.isNull else { return .success(0) }
            guard let literal = v.numberLiteral else { return .failure(LineError(.invalidField, "field 'usage.\(name)' must be an integer")) }
            guard let n = Int64(literal) else { return .failure(LineError(.invalidField, "field 'usage.\(name)' must be an integer, got \(literal.prefix(24))")) }
            guard n >= 0 else { return .failure(LineError(.invalidUsage, "field 'usage.\(name)' is negative (\(n))")) }
            return .success(n)
        }
        do {
            let usage = UsageEvent.Usage(input: try count("input").get(), output: try count("output").get(),
                                         cachedInput: try count("cached_input").get(), cacheWrite: try count("cache_write").get(),
                                         reasoning: try count("reasoning").get())
            if let violation = usage.violation { return (nil, LineError(.invalidUsage, violation)) }
            return (.some(usage), nil)
        } catch {
            return (nil, error)
        }
    }

    mutating func tagsValue() throws(LineError) -> ([String: String], LineError?) {
        let value = try anyValue()
        if value.isNull { return ([:], nil) }
        guard case .object(let members) = value else { return ([:], LineError(.invalidField, "field 'tags' must be an object")) }
        var tags: [String: String] = [:]
        for member in members {
            guard let s = member.value.stringValue else { return ([:], LineError(.invalidField, "tag '\(member.key.prefix(40))' must be a string")) }
            tags[member.key] = s
        }
        return (tags, nil)
    }
}
