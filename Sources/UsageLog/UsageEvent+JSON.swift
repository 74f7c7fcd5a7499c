/// Why one log line could not be read as a v1 event. The message names the field.
public struct LineError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Not JSON at all, or not an object.
        case notJSON = "not_json"
        /// A required field is absent.
        case missingField = "missing_field"
        /// A field has the wrong type or an invalid value.
        case invalidField = "invalid_field"
        /// A token count is negative or the counts contradict each other.
        case invalidUsage = "invalid_usage"
        /// `v` is newer than this reader understands.
        case futureVersion = "future_version"
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

extension UsageEvent {
    /// Appends this event as one v1 log line, ending in `\n`, to `out`.
    ///
    /// Field order is fixed (as in `docs/usage-log.md`) and tags are sorted, so equal events give equal bytes.
    public func appendJSONLine(to out: inout [UInt8]) {
        JSONWriter.appendRaw(#"{"v":"#, to: &out)
        JSONWriter.appendInteger(version, to: &out)
        JSONWriter.appendRaw(#","id":"#, to: &out)
        JSONWriter.appendString(id, to: &out)
        JSONWriter.appendRaw(#","ts":""#, to: &out)
        Timestamp.append(milliseconds: timestamp, to: &out)
        JSONWriter.appendRaw(#"","collector":"#, to: &out)
        JSONWriter.appendString(collector, to: &out)
        JSONWriter.appendRaw(#","key":"#, to: &out)
        JSONWriter.appendString(key, to: &out)
        JSONWriter.appendRaw(#","provider":"#, to: &out)
        JSONWriter.appendString(provider, to: &out)
        JSONWriter.appendRaw(#","endpoint":"#, to: &out)
        JSONWriter.appendString(endpoint.rawValue, to: &out)
        JSONWriter.appendRaw(#","model":"#, to: &out)
        JSONWriter.appendString(model, to: &out)
        JSONWriter.appendRaw(#","status":"#, to: &out)
        JSONWriter.appendInteger(status, to: &out)
        JSONWriter.appendRaw(#","outcome":"#, to: &out)
        JSONWriter.appendString(outcome.rawValue, to: &out)
        JSONWriter.appendRaw(stream ? #","stream":true,"usage":"# : #","stream":false,"usage":"#, to: &out)
        if let usage {
            JSONWriter.appendRaw(#"{"input":"#, to: &out)
            JSONWriter.appendInteger(usage.input, to: &out)
            JSONWriter.appendRaw(#","output":"#, to: &out)
            JSONWriter.appendInteger(usage.output, to: &out)
            JSONWriter.appendRaw(#","cached_input":"#, to: &out)
            JSONWriter.appendInteger(usage.cachedInput, to: &out)
            JSONWriter.appendRaw(#","cache_write":"#, to: &out)
            JSONWriter.appendInteger(usage.cacheWrite, to: &out)
            JSONWriter.appendRaw(#","reasoning":"#, to: &out)
            JSONWriter.appendInteger(usage.reasoning, to: &out)
            out.append(UInt8(ascii: "}"))
        } else {
            out.append(contentsOf: "null".utf8)
        }
        JSONWriter.appendRaw(#","latency_ms":"#, to: &out)
        JSONWriter.appendOptionalInteger(latencyMs, to: &out)
        JSONWriter.appendRaw(#","ttft_ms":"#, to: &out)
        JSONWriter.appendOptionalInteger(ttftMs, to: &out)
        JSONWriter.appendRaw(#","prompt_hash":"#, to: &out)
        JSONWriter.appendOptionalString(promptHash, to: &out)
        JSONWriter.appendRaw(#","prompt_sim":"#, to: &out)
        JSONWriter.appendOptionalString(promptSim.map(SimHash.hex), to: &out)
        JSONWriter.appendRaw(#","prompt_chars":"#, to: &out)
        JSONWriter.appendOptionalInteger(promptChars, to: &out)
        JSONWriter.appendRaw(#","preview":"#, to: &out)
        JSONWriter.appendOptionalString(preview, to: &out)
        JSONWriter.appendRaw(#","user":"#, to: &out)
        JSONWriter.appendOptionalString(user, to: &out)
        JSONWriter.appendRaw(#","tags":{"#, to: &out)
        if tags.count == 1, let tag = tags.first {
            JSONWriter.appendString(tag.key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.appendString(tag.value, to: &out)
        } else if tags.count > 1 {
            for (i, key) in tags.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                JSONWriter.appendString(tags[key]!, to: &out)
            }
        }
        JSONWriter.appendRaw(#"},"error":"#, to: &out)
        JSONWriter.appendOptionalString(error, to: &out)
        out.append(contentsOf: "}\n".utf8)
    }

    /// The event as one v1 log line, ending in `\n`.
    public var jsonLine: String {
        var out: [UInt8] = []
        appendJSONLine(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads one log line (without or with its trailing `\n`).
    ///
    /// Required: `v`, `id`, `ts`, `collector`, `key`, `provider`, `endpoint`, `model`, `status`, `outcome`.
    /// Everything else may be absent (read as null, false or empty). Unknown fields are ignored.
    public init(jsonLine bytes: UnsafeBufferPointer<UInt8>) throws(LineError) {
        let value: JSONValue
        do {
            value = try JSONValue.parse(buffer: bytes)
        } catch {
            throw LineError(.notJSON, "not JSON: \(error)")
        }
        try self.init(json: value)
    }

    /// Reads one log line from a string.
    public init(jsonLine: String) throws(LineError) {
        var copy = jsonLine
        let result = copy.withUTF8 { buffer in Result { () throws(LineError) in try UsageEvent(jsonLine: buffer) } }
        self = try result.get()
    }

    /// Reads an event from a parsed JSON object.
    public init(json: JSONValue) throws(LineError) {
        guard case .object(let members) = json else { throw LineError(.notJSON, "the line is JSON but not an object") }
        // A field named twice is ambiguous (readers disagree on which counts), so the line is refused.
        var names = Set<String>()
        for member in members where !names.insert(member.key).inserted {
            throw LineError(.invalidField, "field '\(member.key.prefix(40))' appears twice")
        }
        func required(_ name: String) throws(LineError) -> JSONValue {
            guard let value = json[name], !value.isNull else { throw LineError(.missingField, "missing required field '\(name)'") }
            return value
        }
        func string(_ name: String) throws(LineError) -> String {
            guard let s = try required(name).stringValue else { throw LineError(.invalidField, "field '\(name)' must be a string") }
            return s
        }
        func optionalString(_ name: String) throws(LineError) -> String? {
            guard let value = json[name], !value.isNull else { return nil }
            guard let s = value.stringValue else { throw LineError(.invalidField, "field '\(name)' must be a string or null") }
            return s
        }
        func optionalInteger(_ name: String, in object: JSONValue = json) throws(LineError) -> Int64? {
            guard let value = object[name], !value.isNull else { return nil }
            guard let n = value.int64Value else { throw LineError(.invalidField, "field '\(name)' must be an integer or null") }
            return n
        }

        guard let version = try required("v").int64Value else { throw LineError(.invalidField, "field 'v' must be an integer") }
        guard version <= Int64(UsageEvent.currentVersion) else {
            throw LineError(.futureVersion, "format version \(version) is newer than this reader (v\(UsageEvent.currentVersion))")
        }
        guard version >= 1 else { throw LineError(.invalidField, "field 'v' must be 1 or more") }
        self.version = Int(version)
        id = try string("id")
        guard !id.isEmpty else { throw LineError(.invalidField, "field 'id' must not be empty") }
        let ts = try string("ts")
        guard let millis = Timestamp.parse(ts) else { throw LineError(.invalidField, "field 'ts' is not an RFC 3339 time: \(ts.prefix(40))") }
        timestamp = millis
        collector = try string("collector")
        key = try string("key")
        provider = try string("provider")
        let endpointText = try string("endpoint")
        guard let endpoint = Endpoint(rawValue: endpointText) else {
            throw LineError(.invalidField, "field 'endpoint' has unknown value '\(endpointText.prefix(40))'")
        }
        self.endpoint = endpoint
        model = try string("model")
        guard let status = try required("status").int64Value, (0...999).contains(status) else {
            throw LineError(.invalidField, "field 'status' must be an HTTP status code")
        }
        self.status = Int(status)
        let outcomeText = try string("outcome")
        guard let outcome = Outcome(rawValue: outcomeText) else {
            throw LineError(.invalidField, "field 'outcome' has unknown value '\(outcomeText.prefix(40))'")
        }
        self.outcome = outcome
        if let value = json["stream"], !value.isNull {
            guard let b = value.boolValue else { throw LineError(.invalidField, "field 'stream' must be true or false") }
            stream = b
        } else {
            stream = false
        }

        if let usageValue = json["usage"], !usageValue.isNull {
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
            let usage = Usage(input: try count("input"), output: try count("output"), cachedInput: try count("cached_input"),
                              cacheWrite: try count("cache_write"), reasoning: try count("reasoning"))
            if let violation = usage.violation { throw LineError(.invalidUsage, violation) }
            self.usage = usage
        } else {
            usage = nil
        }

        latencyMs = try optionalInteger("latency_ms")
        ttftMs = try optionalInteger("ttft_ms")
        promptHash = try optionalString("prompt_hash")
        if let text = try optionalString("prompt_sim") {
            guard let sim = SimHash.parseHex(text) else { throw LineError(.invalidField, "field 'prompt_sim' must be 16 hex digits") }
            promptSim = sim
        } else {
            promptSim = nil
        }
        promptChars = try optionalInteger("prompt_chars")
        preview = try optionalString("preview")
        user = try optionalString("user")
        var tags: [String: String] = [:]
        if let tagsValue = json["tags"], !tagsValue.isNull {
            guard case .object(let members) = tagsValue else { throw LineError(.invalidField, "field 'tags' must be an object") }
            for member in members {
                guard let s = member.value.stringValue else { throw LineError(.invalidField, "tag '\(member.key.prefix(40))' must be a string") }
                tags[member.key] = s
            }
        }
        self.tags = tags
        error = try optionalString("error")
    }
}
