import TallyCore

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
    /// Field order is fixed (as in `docs/usage-log.md`) and tags are sorted, so equal events give equal bytes. The
    /// fields added after the first v1 writers (`service_tier`, `usage_estimated`, the usage members `cache_write_1h`
    /// and `web_search_requests`) are written only when they say something, so lines without them stay as they were.
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
            if usage.cacheWrite1h != 0 {
                JSONWriter.appendRaw(#","cache_write_1h":"#, to: &out)
                JSONWriter.appendInteger(usage.cacheWrite1h, to: &out)
            }
            if usage.webSearchRequests != 0 {
                JSONWriter.appendRaw(#","web_search_requests":"#, to: &out)
                JSONWriter.appendInteger(usage.webSearchRequests, to: &out)
            }
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
        if let serviceTier {
            JSONWriter.appendRaw(#","service_tier":"#, to: &out)
            JSONWriter.appendString(serviceTier, to: &out)
        }
        if usageEstimated { JSONWriter.appendRaw(#","usage_estimated":true"#, to: &out) }
        out.append(contentsOf: "}\n".utf8)
    }

    /// The event as one v1 log line, ending in `\n`.
    public var jsonLine: String {
        var out: [UInt8] = []
        appendJSONLine(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads one log line (without or with its trailing `\n`) through a JSON tree; the ingest's single-pass reader,
    /// `UsageEvent(fastLine:)`, gives the same results. Unknown fields are ignored.
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

    /// Reads an event from a parsed JSON object (the rules are in `UsageEvent(checking:)`).
    public init(json: JSONValue) throws(LineError) {
        guard case .object(let members) = json else { throw LineError(.notJSON, "the line is JSON but not an object") }
        var fields = LineFields()
        for member in members { fields.record(name: member.key, value: member.value) }
        try self.init(checking: fields)
    }
}
