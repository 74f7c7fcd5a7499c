import TallyConfig
import TallyCore
import UsageLog

/// The OpenAI API: chat completions, legacy completions, Responses and embeddings, key as `Authorization: Bearer`.
///
/// Streamed chat and completions calls report usage only when asked (`stream_options.include_usage`), so the adapter
/// asks on the client's behalf and the stream reader leaves that one extra chunk out of what the client gets.
struct OpenAIAdapter: UsageMemberAdapter {
    var keyHeaders: [String] { ["x-api-key"] }

    func classify(path: Substring) -> ClassifiedPath { ClassifiedPath(lastSegmentsOf: path) }

    func upstreamQuery(_ query: Substring?) -> String? { query.map(String.init) }

    func isHarmless(method: String, group: String, path: Substring) -> Bool { Self.isHarmless(method: method, group: group) }

    /// Listing and reading models, and moderations (free, and about the text sent only).
    static func isHarmless(method: String, group: String) -> Bool {
        (method == "GET" && group == "models") || (method == "POST" && group == "moderations")
    }

    func credential(realKey: String) -> (name: String, value: String) { ("authorization", "Bearer \(realKey)") }

    func readRequest(_ json: JSONValue, bytes: [UInt8], path: ClassifiedPath) -> RequestReading {
        Self.readRequest(json, bytes: bytes, endpoint: path.endpoint)
    }

    /// The request as the OpenAI-style APIs shape it (shared with Azure OpenAI).
    static func readRequest(_ json: JSONValue, bytes: [UInt8], endpoint: UsageEvent.Endpoint) -> RequestReading {
        let stream = json["stream"]?.boolValue ?? false
        var reading = RequestReading(model: json["model"]?.stringValue, stream: stream, user: json["user"]?.stringValue)
        if stream, endpoint == .chatCompletions || endpoint == .completions,
            json["stream_options"]?["include_usage"]?.boolValue != true
        {
            reading.rewrittenBody = requestingUsage(bytes, json)
        }
        return reading
    }

    /// The request body with `stream_options.include_usage: true`, so that the stream ends with usage.
    /// Without `stream_options`, it is inserted after the opening brace and the rest stays byte for byte.
    static func requestingUsage(_ bytes: [UInt8], _ json: JSONValue) -> [UInt8]? {
        if json["stream_options"] == nil, let brace = bytes.firstIndex(of: UInt8(ascii: "{")) {
            var out = Array(bytes[...brace])
            out.append(contentsOf: #""stream_options":{"include_usage":true},"#.utf8)
            out.append(contentsOf: bytes[(brace + 1)...])
            return out
        }
        guard case .object(var members) = json else { return nil }
        var options: [(key: String, value: JSONValue)] = []
        if case .object(let existing)? = json["stream_options"] { options = existing.filter { $0.key != "include_usage" } }
        options.append(("include_usage", .bool(true)))
        members.removeAll { $0.key == "stream_options" }
        members.append(("stream_options", .object(options)))
        var out: [UInt8] = []
        JSONWriter.appendCanonical(.object(members), to: &out)
        return out
    }

    func refusal(_ reason: RefusalReason, message: String) -> (status: Int, body: [UInt8]) {
        Self.refusal(reason, message: message)
    }

    /// Refusals in OpenAI's error shape (shared with Azure OpenAI, whose SDK reads the same shape).
    static func refusal(_ reason: RefusalReason, message: String) -> (status: Int, body: [UInt8]) {
        let (status, type, code): (Int, String, String?) =
            switch reason {
            case .unknownKey: (401, "invalid_request_error", "invalid_api_key")
            case .revoked(.budget), .revoked(.runaway): (429, "insufficient_quota", "insufficient_quota")
            case .revoked(.expired): (403, "permission_error", "key_expired")
            case .revoked: (403, "permission_error", "key_revoked")
            case .unknownRoute: (404, "not_found_error", "unknown_route")
            case .badPath: (400, "invalid_request_error", "invalid_path")
            case .requestTooLarge: (413, "invalid_request_error", "request_too_large")
            case .requestNotRead: (408, "invalid_request_error", "request_timeout")
            case .logUnavailable: (503, "api_error", "log_unavailable")
            case .unreadableBody: (400, "invalid_request_error", "unreadable_body")
            case .endpointNotAllowed: (403, "permission_error", "endpoint_not_allowed")
            case .noProviderKey, .upstreamUnreachable: (502, "api_error", nil)
            case .revocationsUnavailable: (503, "api_error", "revocation_list_unavailable")
            }
        return (status, errorBody(type: type, code: code, message: message))
    }

    /// `{"error":{"message":…,"type":…,"param":null,"code":…}}`
    static func errorBody(type: String, code: String?, message: String) -> [UInt8] {
        var out: [UInt8] = []
        out.append(contentsOf: #"{"error":{"message":"#.utf8)
        JSONWriter.appendString(message, to: &out)
        out.append(contentsOf: #","type":"#.utf8)
        JSONWriter.appendString(type, to: &out)
        out.append(contentsOf: #","param":null,"code":"#.utf8)
        JSONWriter.appendOptionalString(code, to: &out)
        out.append(contentsOf: "}}".utf8)
        return out
    }

    func streamReader() -> any StreamEventReader { StreamReader() }

    /// Chat/completions/embeddings (`prompt_tokens`…) and Responses (`input_tokens`…) usage in the log's terms. A
    /// cache-write count is read where the response reports one (`cache_write_tokens` or `cache_creation_tokens` in the
    /// input details).
    static func usage(_ usage: JSONValue) -> UsageEvent.Usage? {
        guard case .object = usage else { return nil }
        func int(_ value: JSONValue?) -> Int64 { max(0, value?.int64Value ?? 0) }
        guard let input = (usage["prompt_tokens"] ?? usage["input_tokens"])?.int64Value else { return nil }
        let output = int(usage["completion_tokens"] ?? usage["output_tokens"])
        let inputDetails = usage["prompt_tokens_details"] ?? usage["input_tokens_details"]
        let outputDetails = usage["completion_tokens_details"] ?? usage["output_tokens_details"]
        let cached = min(int(inputDetails?["cached_tokens"]), max(0, input))
        let written = min(int(inputDetails?["cache_write_tokens"] ?? inputDetails?["cache_creation_tokens"]), max(0, input) - cached)
        let reasoning = min(int(outputDetails?["reasoning_tokens"]), output)
        return UsageEvent.Usage(input: max(0, input), output: output, cachedInput: cached, cacheWrite: written, reasoning: reasoning)
    }

    static func serviceTier(_ capture: TopLevelFieldCapture) -> String? { capture.value("service_tier")?.stringValue }

    func responseCapture(path: ClassifiedPath) -> TopLevelFieldCapture { Self.responseCapture(path: path) }

    func readResponse(_ capture: TopLevelFieldCapture) -> ResponseReading { Self.readResponse(capture) }

    /// A Responses answer also counts its `web_search_call` output items, which are billed per search.
    static func responseCapture(path: ClassifiedPath) -> TopLevelFieldCapture {
        path.endpoint == .responses ? responsesCapture : .usageMembers
    }

    // Made once and copied for each answer, as `TopLevelFieldCapture.usageMembers` is.
    private static let responsesCapture = TopLevelFieldCapture(
        wanted: TopLevelFieldCapture.usageMemberNames, countingType: "web_search_call")

    static func readResponse(_ capture: TopLevelFieldCapture) -> ResponseReading {
        var usage = capture.value("usage").flatMap(Self.usage)
        if capture.typeCount > 0 { usage?.webSearchRequests = Int64(capture.typeCount) }
        return ResponseReading(usage: usage, model: capture.value("model")?.stringValue, serviceTier: serviceTier(capture))
    }

    /// The `web_search_call` items of a Responses `output`.
    static func webSearchCalls(_ response: JSONValue?) -> Int64 {
        guard case .array(let items)? = response?["output"] else { return 0 }
        return Int64(items.filter { $0["type"]?.stringValue == "web_search_call" }.count)
    }

    /// Chat and completions chunks, `[DONE]`, and the Responses API's typed events.
    struct StreamReader: StreamEventReader {
        private(set) var usage: UsageEvent.Usage?
        private(set) var model: String?
        private(set) var streamError: String?
        private(set) var completed = false
        private(set) var serviceTier: String?
        /// OpenAI reports usage once, at the end.
        var usageIsFinal: Bool { usage != nil || completed }

        mutating func read(data: [UInt8], dropInjectedUsageChunk: Bool) -> Bool {
            if data.elementsEqual("[DONE]".utf8) {
                completed = true
                return true
            }
            guard mayCarryWhatIsRead(data), let json = try? JSONValue.parse(data), case .object = json else { return true }
            if let type = json["type"]?.stringValue {
                readResponsesEvent(type, json)
                return true
            }
            // Chat completions and legacy completions chunks.
            if let name = json["model"]?.stringValue, !name.isEmpty { model = name }
            if let tier = json["service_tier"]?.stringValue { serviceTier = tier }
            var keep = true
            if let u = json["usage"], !u.isNull, let read = OpenAIAdapter.usage(u) {
                usage = read
                if dropInjectedUsageChunk, case .array(let choices)? = json["choices"], choices.isEmpty { keep = false }
            }
            if let message = json["error"]?["message"]?.stringValue { streamError = message }
            return keep
        }

        /// The model comes with the first chunk; after that, only a usage object, an error or a Responses event
        /// matters. A plain byte search: a false "yes" costs a parse, and a "no" is certain.
        private func mayCarryWhatIsRead(_ data: [UInt8]) -> Bool {
            if model == nil { return true }
            return data.withUnsafeBufferPointer { bytes in
                // One pass, looking only where a quote is, and only further where the next letter could begin one of
                // the three names: most chunks hold none of them.
                var at = 0
                while let quote = ByteSearch.find(bytes, "\"", from: at), quote + 1 < bytes.count {
                    switch bytes[quote + 1] {
                    case UInt8(ascii: "e"): if ByteSearch.matches(bytes, "\"error\"", at: quote) { return true }
                    case UInt8(ascii: "t"): if ByteSearch.matches(bytes, "\"type\"", at: quote) { return true }
                    case UInt8(ascii: "u"): if ByteSearch.objectFollows(bytes, "\"usage\"", at: quote) { return true }
                    default: break
                    }
                    at = quote + 1
                }
                return false
            }
        }

        private mutating func readResponsesEvent(_ type: String, _ json: JSONValue) {
            let response = json["response"]
            if let name = response?["model"]?.stringValue { model = name }
            if let tier = response?["service_tier"]?.stringValue { serviceTier = tier }
            switch type {
            case "response.completed", "response.incomplete", "response.failed":
                if let u = response?["usage"], var read = OpenAIAdapter.usage(u) {
                    read.webSearchRequests = OpenAIAdapter.webSearchCalls(response)
                    usage = read
                }
                completed = true
                if type == "response.failed" {
                    streamError = response?["error"]?["message"]?.stringValue ?? "response failed"
                }
            case "error":
                streamError = json["message"]?.stringValue ?? json["error"]?["message"]?.stringValue ?? "error event"
            default:
                break
            }
        }
    }
}
