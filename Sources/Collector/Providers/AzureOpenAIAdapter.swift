import TallyConfig
import TallyCore
import UsageLog

/// Azure OpenAI: the OpenAI API behind deployment routes, key as `api-key`.
///
/// Clients call `/openai/deployments/{deployment}/chat/completions?api-version=…` (the query is forwarded as it is) or
/// the newer `/openai/v1/…` routes. The body usually names no model: the deployment stands in for it until the
/// response names the model that served the call. Errors, usage and streams are OpenAI's, including the
/// `include_usage` request Tally adds to streamed chat and completions calls (Azure honours it from api-version
/// 2024-09-01-preview on).
struct AzureOpenAIAdapter: UsageMemberAdapter {
    var keyHeaders: [String] { ["api-key", "x-api-key"] }

    func classify(path: Substring) -> ClassifiedPath {
        var classified = ClassifiedPath(lastSegmentsOf: path)
        let segments = path.split(separator: "/")
        if let at = segments.firstIndex(of: "deployments"), at + 1 < segments.count {
            classified.model = String(segments[at + 1])
        }
        return classified
    }

    func upstreamQuery(_ query: Substring?) -> String? { query.map(String.init) }

    func isHarmless(method: String, group: String, path: Substring) -> Bool { OpenAIAdapter.isHarmless(method: method, group: group) }

    func credential(realKey: String) -> (name: String, value: String) { ("api-key", realKey) }

    func readRequest(_ json: JSONValue, bytes: [UInt8], path: ClassifiedPath) -> RequestReading {
        var reading = OpenAIAdapter.readRequest(json, bytes: bytes, endpoint: path.endpoint)
        if reading.model?.isEmpty ?? true { reading.model = path.model }
        return reading
    }

    func refusal(_ reason: RefusalReason, message: String) -> (status: Int, body: [UInt8]) {
        OpenAIAdapter.refusal(reason, message: message)
    }

    static func usage(_ usage: JSONValue) -> UsageEvent.Usage? { OpenAIAdapter.usage(usage) }

    static func serviceTier(_ capture: TopLevelFieldCapture) -> String? { OpenAIAdapter.serviceTier(capture) }

    func responseCapture(path: ClassifiedPath) -> TopLevelFieldCapture { OpenAIAdapter.responseCapture(path: path) }

    func readResponse(_ capture: TopLevelFieldCapture) -> ResponseReading { OpenAIAdapter.readResponse(capture) }

    func streamReader() -> any StreamEventReader { OpenAIAdapter.StreamReader() }
}
