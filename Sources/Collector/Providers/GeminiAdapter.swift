import Foundation
import TallyConfig
import TallyCore
import UsageLog

/// Google's Gemini API, native: `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`, key as
/// `x-goog-api-key` (or a `?key=` query parameter, which is a credential too: taken out, never forwarded or logged).
///
/// The model is in the path, not the body; a stream is asked for by the method name. Usage is `usageMetadata`:
/// `promptTokenCount` includes `cachedContentTokenCount`, and `thoughtsTokenCount` is billed as output but is not
/// inside `candidatesTokenCount`.
struct GeminiAdapter: ProviderAdapter {
    var keyHeaders: [String] { ["x-goog-api-key"] }

    /// The query parameter a client may put its key in.
    static let keyParameter = "key"

    /// The request fields that make up a prompt in the Gemini API, hashed with the model from the path.
    static let promptFields = ["contents", "systemInstruction", "system_instruction"]

    func classify(path: Substring) -> ClassifiedPath {
        // …/models/{model}:{method}; tuned models are …/tunedModels/{model}:{method}.
        let last = path.split(separator: "/", omittingEmptySubsequences: false).last ?? ""
        guard let colon = last.lastIndex(of: ":") else { return ClassifiedPath(endpoint: .other) }
        let model = last[..<colon]
        let method = last[last.index(after: colon)...]
        let named = model.isEmpty ? nil : String(model)
        switch method {
        case "generateContent": return ClassifiedPath(endpoint: .generateContent, model: named)
        case "streamGenerateContent": return ClassifiedPath(endpoint: .generateContent, model: named, streams: true)
        case "embedContent", "batchEmbedContents": return ClassifiedPath(endpoint: .embeddings, model: named)
        default: return ClassifiedPath(endpoint: .other, model: named)
        }
    }

    /// Listing and reading models (`GET …/models`, `…/models/{model}`), and `:countTokens` (free).
    func isHarmless(method: String, group: String, path: Substring) -> Bool {
        (method == "GET" && group == "models") || (method == "POST" && group == "countTokens")
    }

    /// A `…/models/{model}:{method}` (or `tunedModels`) call is its method's group (`batchGenerateContent`, `predict`,
    /// …); other paths are grouped by their first segment (`files`, `cachedContents`, …).
    func endpointGroup(of path: Substring) -> String {
        let segments = path.split(separator: "/")
        if segments.count >= 2, ["models", "tunedModels"].contains(segments[segments.count - 2]),
            let colon = segments.last!.lastIndex(of: ":")
        {
            let method = segments.last![segments.last!.index(after: colon)...]
            if !method.isEmpty { return String(method) }
        }
        return EndpointGroups.group(of: path)
    }

    /// The client's query without its `key=` parameters; nil when nothing else is left.
    func upstreamQuery(_ query: Substring?) -> String? {
        guard let query else { return nil }
        let kept = query.split(separator: "&").filter { parameter in
            let name = parameter.prefix { $0 != "=" }
            return name != Self.keyParameter[...]
        }
        return kept.isEmpty ? nil : kept.joined(separator: "&")
    }

    /// A key in the query (`?key=tk-…`), percent-decoded.
    func presentedKey(query: Substring?) -> String? {
        guard let query else { return nil }
        for parameter in query.split(separator: "&") {
            let parts = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == Self.keyParameter[...] else { continue }
            let value = String(parts[1]).removingPercentEncoding ?? String(parts[1])
            if !value.isEmpty { return value }
        }
        return nil
    }

    func credential(realKey: String) -> (name: String, value: String) { ("x-goog-api-key", realKey) }

    func readRequest(_ json: JSONValue, bytes: [UInt8], path: ClassifiedPath) -> RequestReading {
        RequestReading(model: path.model, stream: path.streams, user: nil, promptFields: Self.promptFields)
    }

    func refusal(_ reason: RefusalReason, message: String) -> (status: Int, body: [UInt8]) {
        let (code, status): (Int, String) =
            switch reason {
            case .unknownKey: (401, "UNAUTHENTICATED")
            case .revoked(.budget), .revoked(.runaway): (429, "RESOURCE_EXHAUSTED")
            case .revoked: (403, "PERMISSION_DENIED")
            case .unknownRoute: (404, "NOT_FOUND")
            case .badPath: (400, "INVALID_ARGUMENT")
            case .requestTooLarge: (413, "INVALID_ARGUMENT")
            case .requestNotRead: (408, "DEADLINE_EXCEEDED")
            case .logUnavailable: (503, "UNAVAILABLE")
            case .unreadableBody: (400, "INVALID_ARGUMENT")
            case .endpointNotAllowed: (403, "PERMISSION_DENIED")
            case .noProviderKey, .upstreamUnreachable: (502, "UNAVAILABLE")
            case .revocationsUnavailable: (503, "UNAVAILABLE")
            }
        // {"error":{"code":…,"message":…,"status":…}}, as Google's APIs answer.
        var out: [UInt8] = []
        out.append(contentsOf: #"{"error":{"code":"#.utf8)
        out.append(contentsOf: String(code).utf8)
        out.append(contentsOf: #","message":"#.utf8)
        JSONWriter.appendString(message, to: &out)
        out.append(contentsOf: #","status":"#.utf8)
        JSONWriter.appendString(status, to: &out)
        out.append(contentsOf: "}}".utf8)
        return (code, out)
    }

    /// A plain answer is one `GenerateContentResponse`; `:streamGenerateContent` without `alt=sse` answers a JSON array
    /// of them, whose last element holds the final counts.
    func responseCapture(path: ClassifiedPath) -> TopLevelFieldCapture {
        path.streams ? Self.arrayCapture : Self.answerCapture
    }

    // Made once and copied for each answer.
    private static let answerCapture = TopLevelFieldCapture(wanted: ["usageMetadata", "modelVersion"])
    private static let arrayCapture = TopLevelFieldCapture(wanted: ["usageMetadata", "modelVersion"], insideArray: true)

    func readResponse(_ capture: TopLevelFieldCapture) -> ResponseReading {
        ResponseReading(usage: capture.value("usageMetadata").flatMap(Self.usage), model: capture.value("modelVersion")?.stringValue)
    }

    func streamReader() -> any StreamEventReader { StreamReader() }

    /// `usageMetadata` in the log's terms: input = prompt (which includes the cached part) + tool-use prompt tokens;
    /// output = candidates + thoughts; reasoning = thoughts.
    static func usage(_ metadata: JSONValue) -> UsageEvent.Usage? {
        guard case .object = metadata else { return nil }
        let counts = metadata.integerMembers()
        func int(_ key: String) -> Int64 { max(0, counts[key] ?? 0) }
        guard counts["promptTokenCount"] != nil || counts["candidatesTokenCount"] != nil else { return nil }
        let input = int("promptTokenCount") + int("toolUsePromptTokenCount")
        let thoughts = int("thoughtsTokenCount")
        return UsageEvent.Usage(
            input: input, output: int("candidatesTokenCount") + thoughts,
            cachedInput: min(int("cachedContentTokenCount"), input), cacheWrite: 0, reasoning: thoughts)
    }

    /// With `alt=sse` every event is a `GenerateContentResponse`; each carries the counts so far (the last wins).
    struct StreamReader: StreamEventReader {
        private(set) var usage: UsageEvent.Usage?
        private(set) var model: String?
        private(set) var streamError: String?
        private(set) var completed = false

        mutating func read(data: [UInt8], dropInjectedUsageChunk: Bool) -> Bool {
            let mayMatter = data.withUnsafeBufferPointer { bytes in
                ByteSearch.contains(bytes, "\"usageMetadata\"") || ByteSearch.contains(bytes, "\"error\"")
                    || ByteSearch.contains(bytes, "\"finishReason\"") || model == nil
            }
            guard mayMatter, let json = try? JSONValue.parse(data), case .object = json else { return true }
            if let name = json["modelVersion"]?.stringValue, !name.isEmpty { model = name }
            if let metadata = json["usageMetadata"], let read = GeminiAdapter.usage(metadata) { usage = read }
            if case .array(let candidates)? = json["candidates"],
                candidates.contains(where: { $0["finishReason"]?.stringValue != nil })
            {
                completed = true
            }
            if let error = json["error"], !error.isNull {
                streamError = error["message"]?.stringValue ?? "error event"
            }
            return true
        }
    }
}
