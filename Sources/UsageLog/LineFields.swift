import TallyCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The members of one log line as a reader found them, before the v1 rules are checked. Both readers (the tree-building
/// `UsageEvent(jsonLine:)` and the single-pass `UsageEvent(fastLine:)`) fill one of these; `UsageEvent(checking:)`
/// holds the rules, once.
struct LineFields {
    /// The fields v1 knows.
    enum Field: String, CaseIterable {
        case v, id, ts, collector, key, provider, endpoint, model, status, outcome, stream, usage, tags, preview, user, error
        case latencyMs = "latency_ms"
        case ttftMs = "ttft_ms"
        case promptHash = "prompt_hash"
        case promptSim = "prompt_sim"
        case promptChars = "prompt_chars"
        case serviceTier = "service_tier"
        case usageEstimated = "usage_estimated"

        /// The field's slot in `LineFields.values`.
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
            case .serviceTier: 21
            case .usageEstimated: 22
            }
        }

        /// `stream`, `usage_estimated`, `usage` and `tags` are kept as parsed values; the others as `Raw` scalars.
        var isStructured: Bool { self == .stream || self == .usage || self == .tags || self == .usageEstimated }

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
            case 12: return equals("prompt_chars") ? .promptChars : equals("service_tier") ? .serviceTier : nil
            case 15: return equals("usage_estimated") ? .usageEstimated : nil
            default: return nil
            }
        }
    }

    /// A scalar member's value, before it is checked.
    enum Raw {
        case null
        case string(String)
        case integer(Int64)
        /// Any other value (a fraction, a huge number, true, an array…), already checked to be valid JSON.
        case other

        init(_ value: JSONValue) {
            switch value {
            case .null: self = .null
            case .string(let s): self = .string(s)
            case .number(let literal): self = Int64(literal).map(Raw.integer) ?? .other
            default: self = .other
            }
        }
    }

    private var scalars = [Raw?](repeating: nil, count: Field.allCases.count)
    private var stream: JSONValue?
    private var usage: JSONValue?
    private var tags: JSONValue?
    private var usageEstimated: JSONValue?
    private var seenKnown: UInt32 = 0
    private var seenUnknown = Set<String>()
    /// The first member name seen twice, if any.
    private(set) var duplicate: String?

    /// Notes that a member was seen; `name` is only called for names v1 does not know.
    mutating func see(_ field: Field?, name: () -> String) {
        guard duplicate == nil else { return }
        if let field {
            let bit = UInt32(1) << UInt32(field.index)
            if seenKnown & bit != 0 { duplicate = field.rawValue }
            seenKnown |= bit
        } else if !seenUnknown.insert(name()).inserted {
            duplicate = name()
        }
    }

    mutating func set(_ field: Field, scalar: Raw) { scalars[field.index] = scalar }
    mutating func set(_ field: Field, value: JSONValue) {
        switch field {
        case .stream: stream = value
        case .usage: usage = value
        case .tags: tags = value
        case .usageEstimated: usageEstimated = value
        default: scalars[field.index] = Raw(value)
        }
    }

    /// Records a member from a parsed tree.
    mutating func record(name: String, value: JSONValue) {
        let field = Field(rawValue: name)
        see(field, name: { name })
        guard let field else { return }
        if field.isStructured { set(field, value: value) } else { set(field, scalar: Raw(value)) }
    }

    subscript(_ field: Field) -> Raw? { scalars[field.index] }
    /// The parsed value of `stream`, `usage_estimated`, `usage` or `tags`.
    func value(_ field: Field) -> JSONValue? {
        switch field {
        case .stream: stream
        case .usage: usage
        case .tags: tags
        case .usageEstimated: usageEstimated
        default: nil
        }
    }
}

extension UsageEvent {
    /// Applies the v1 rules to the members a reader found. Required: `v`, `id`, `ts`, `collector`, `key`, `provider`,
    /// `endpoint`, `model`, `status`, `outcome`; everything else may be absent (null, false or empty).
    init(checking fields: LineFields) throws(LineError) {
        // A field named twice is ambiguous (readers disagree on which counts), so the line is refused.
        if let duplicate = fields.duplicate { throw LineError(.invalidField, "field '\(duplicate.prefix(40))' appears twice") }
        func required(_ field: LineFields.Field) throws(LineError) -> LineFields.Raw {
            guard let raw = fields[field] else { throw LineError(.missingField, "missing required field '\(field.rawValue)'") }
            if case .null = raw { throw LineError(.missingField, "missing required field '\(field.rawValue)'") }
            return raw
        }
        func string(_ field: LineFields.Field) throws(LineError) -> String {
            guard case .string(let s) = try required(field) else {
                throw LineError(.invalidField, "field '\(field.rawValue)' must be a string")
            }
            return s
        }
        func optionalString(_ field: LineFields.Field) throws(LineError) -> String? {
            switch fields[field] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            default: throw LineError(.invalidField, "field '\(field.rawValue)' must be a string or null")
            }
        }
        func optionalInteger(_ field: LineFields.Field) throws(LineError) -> Int64? {
            switch fields[field] {
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
        self.version = Int(version)
        id = try string(.id)
        guard !id.isEmpty else { throw LineError(.invalidField, "field 'id' must not be empty") }
        let ts = try string(.ts)
        guard let millis = Timestamp.parse(ts) else {
            throw LineError(.invalidField, "field 'ts' is not an RFC 3339 time: \(ts.prefix(40))")
        }
        timestamp = millis
        collector = try string(.collector)
        key = try string(.key)
        provider = try string(.provider)
        let endpointText = try string(.endpoint)
        guard let endpoint = Endpoint(rawValue: endpointText) else {
            throw LineError(.invalidField, "field 'endpoint' has unknown value '\(endpointText.prefix(40))'")
        }
        self.endpoint = endpoint
        model = try string(.model)
        guard case .integer(let status) = try required(.status), (0...999).contains(status) else {
            throw LineError(.invalidField, "field 'status' must be an HTTP status code")
        }
        self.status = Int(status)
        let outcomeText = try string(.outcome)
        guard let outcome = Outcome(rawValue: outcomeText) else {
            throw LineError(.invalidField, "field 'outcome' has unknown value '\(outcomeText.prefix(40))'")
        }
        self.outcome = outcome
        if let value = fields.value(.stream), !value.isNull {
            guard let b = value.boolValue else { throw LineError(.invalidField, "field 'stream' must be true or false") }
            stream = b
        } else {
            stream = false
        }

        if let usageValue = fields.value(.usage), !usageValue.isNull {
            guard case .object = usageValue else { throw LineError(.invalidField, "field 'usage' must be an object or null") }
            func count(_ name: String) throws(LineError) -> Int64 {
                guard let value = usageValue[name], !value.isNull else { return 0 }
                guard let literal = value.numberLiteral else { throw LineError(.invalidField, "field 'usage.\(name)' must be an integer") }
                guard let n = Int64(literal) else {
                    throw LineError(.invalidField, "field 'usage.\(name)' must be an integer, got \(literal.prefix(24))")
                }
                guard n >= 0 else { throw LineError(.invalidUsage, "field 'usage.\(name)' is negative (\(n))") }
                return n
            }
            let usage = Usage(
                input: try count("input"), output: try count("output"), cachedInput: try count("cached_input"),
                cacheWrite: try count("cache_write"), reasoning: try count("reasoning"), cacheWrite1h: try count("cache_write_1h"),
                webSearchRequests: try count("web_search_requests"))
            if let violation = usage.violation { throw LineError(.invalidUsage, violation) }
            self.usage = usage
        } else {
            usage = nil
        }

        latencyMs = try optionalInteger(.latencyMs)
        ttftMs = try optionalInteger(.ttftMs)
        promptHash = try optionalString(.promptHash)
        if let text = try optionalString(.promptSim) {
            guard let sim = SimHash.parseHex(text) else { throw LineError(.invalidField, "field 'prompt_sim' must be 16 hex digits") }
            promptSim = sim
        } else {
            promptSim = nil
        }
        promptChars = try optionalInteger(.promptChars)
        preview = try optionalString(.preview)
        user = try optionalString(.user)
        var tags: [String: String] = [:]
        if let tagsValue = fields.value(.tags), !tagsValue.isNull {
            guard case .object(let members) = tagsValue else { throw LineError(.invalidField, "field 'tags' must be an object") }
            for member in members {
                guard let s = member.value.stringValue else {
                    throw LineError(.invalidField, "tag '\(member.key.prefix(40))' must be a string")
                }
                tags[member.key] = s
            }
        }
        self.tags = tags
        error = try optionalString(.error)
        serviceTier = try optionalString(.serviceTier)
        if let value = fields.value(.usageEstimated), !value.isNull {
            guard let b = value.boolValue else { throw LineError(.invalidField, "field 'usage_estimated' must be true or false") }
            usageEstimated = b
        } else {
            usageEstimated = false
        }
    }
}
