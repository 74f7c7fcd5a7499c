import TallyConfig
import TallyCore
import UsageLog

/// The Anthropic Messages API: key as `x-api-key`, usage whose `input_tokens` leaves out cache reads and writes.
struct AnthropicAdapter: UsageMemberAdapter {
    var keyHeaders: [String] { ["x-api-key"] }

    func classify(path: Substring) -> ClassifiedPath { ClassifiedPath(lastSegmentsOf: path) }

    func upstreamQuery(_ query: Substring?) -> String? { query.map(String.init) }

    /// Listing models, and counting a message's tokens (free).
    func isHarmless(method: String, group: String, path: Substring) -> Bool {
        (method == "GET" && group == "models") || (method == "POST" && group == "messages" && path.hasSuffix("/messages/count_tokens"))
    }

    /// Message batches (`/v1/messages/batches…`) are the `batches` group, as on the other providers.
    func endpointGroup(of path: Substring) -> String {
        path.contains("/messages/batches") ? "batches" : EndpointGroups.group(of: path)
    }

    func credential(realKey: String) -> (name: String, value: String) { ("x-api-key", realKey) }

    func readRequest(_ json: JSONValue, bytes: [UInt8], path: ClassifiedPath) -> RequestReading {
        RequestReading(model: json["model"]?.stringValue, stream: json["stream"]?.boolValue ?? false, user: json["user"]?.stringValue)
    }

    func refusal(_ reason: RefusalReason, message: String) -> (status: Int, body: [UInt8]) {
        let (status, type): (Int, String) =
            switch reason {
            case .unknownKey: (401, "authentication_error")
            case .revoked(.budget), .revoked(.runaway): (429, "rate_limit_error")
            case .revoked: (403, "permission_error")
            case .unknownRoute: (404, "not_found_error")
            case .badPath: (400, "invalid_request_error")
            case .requestTooLarge: (413, "invalid_request_error")
            case .requestNotRead: (408, "timeout_error")
            case .logUnavailable: (503, "overloaded_error")
            case .unreadableBody: (400, "invalid_request_error")
            case .endpointNotAllowed: (403, "permission_error")
            case .noProviderKey, .upstreamUnreachable: (502, "api_error")
            case .revocationsUnavailable: (503, "api_error")
            }
        // {"type":"error","error":{"type":…,"message":…}}
        var out: [UInt8] = []
        out.append(contentsOf: #"{"type":"error","error":{"type":"#.utf8)
        JSONWriter.appendString(type, to: &out)
        out.append(contentsOf: #","message":"#.utf8)
        JSONWriter.appendString(message, to: &out)
        out.append(contentsOf: "}}".utf8)
        return (status, out)
    }

    func streamReader() -> any StreamEventReader { StreamReader() }

    /// Anthropic usage in the log's terms: `input_tokens` excludes cache reads and writes, which `input` counts.
    static func usage(_ usage: JSONValue) -> UsageEvent.Usage? {
        guard case .object = usage else { return nil }
        return self.usage(counts: usage.integerMembers(nested: true))
    }

    /// Anthropic reports the tier inside `usage`.
    static func serviceTier(_ capture: TopLevelFieldCapture) -> String? {
        capture.value("usage")?["service_tier"]?.stringValue
    }

    /// Usage from the integer members of a usage object (`input_tokens`, `cache_creation_input_tokens`, …, and the
    /// nested `cache_creation.ephemeral_1h_input_tokens` and `server_tool_use.web_search_requests`).
    static func usage(counts: [String: Int64]) -> UsageEvent.Usage {
        func int(_ key: String) -> Int64 { max(0, counts[key] ?? 0) }
        let base = int("input_tokens")
        let write = int("cache_creation_input_tokens")
        let read = int("cache_read_input_tokens")
        return UsageEvent.Usage(
            input: base + write + read, output: int("output_tokens"), cachedInput: read, cacheWrite: write, reasoning: 0,
            cacheWrite1h: min(int("cache_creation.ephemeral_1h_input_tokens"), write),
            webSearchRequests: int("server_tool_use.web_search_requests"))
    }

    /// `message_start` carries the input side, each `message_delta` cumulative counts (the last value wins, never a
    /// sum), `message_stop` the end, and an `error` event may follow a 200.
    struct StreamReader: StreamEventReader {
        private(set) var usage: UsageEvent.Usage?
        private(set) var model: String?
        private(set) var streamError: String?
        private(set) var completed = false
        private(set) var serviceTier: String?
        private var counts: [String: Int64] = [:]
        /// The final output count comes with the last `message_delta`; `message_start`'s is a placeholder.
        private var sawDeltaUsage = false
        var usageIsFinal: Bool { completed || sawDeltaUsage }

        mutating func read(data: [UInt8], dropInjectedUsageChunk: Bool) -> Bool {
            let mayMatter = data.withUnsafeBufferPointer { bytes in
                ByteSearch.contains(bytes, "\"message_") || ByteSearch.contains(bytes, "\"error\"")
            }
            guard mayMatter, let json = try? JSONValue.parse(data), case .object = json else { return true }
            switch json["type"]?.stringValue {
            case "message_start":
                let message = json["message"]
                if let name = message?["model"]?.stringValue { model = name }
                if let u = message?["usage"] { merge(u) }
            case "message_delta":
                if let u = json["usage"] {
                    merge(u)
                    sawDeltaUsage = true
                }
            case "message_stop":
                completed = true
            case "error":
                streamError = json["error"]?["message"]?.stringValue ?? "error event"
            default:
                break
            }
            return true
        }

        private mutating func merge(_ usageObject: JSONValue) {
            guard case .object = usageObject else { return }
            counts.merge(usageObject.integerMembers(nested: true)) { _, latest in latest }
            if let tier = usageObject["service_tier"]?.stringValue { serviceTier = tier }
            usage = AnthropicAdapter.usage(counts: counts)
        }
    }
}
