import TallyCore

/// One call through a collector: one line of a usage-log segment (format v1, `docs/usage-log.md`).
public struct UsageEvent: Sendable, Equatable {
    /// The newest log format version this build writes and reads.
    public static let currentVersion = 1

    /// Format version of the line (`v`).
    public var version: Int
    /// Unique event id (UUIDv7); the auditor counts an id once, however often it is seen.
    public var id: String
    /// Request start, milliseconds since the Unix epoch (`ts`, written as RFC 3339 UTC with milliseconds).
    public var timestamp: Int64
    /// The id of the collector that wrote the event.
    public var collector: String
    /// The virtual key's id, never its secret.
    public var key: String
    /// The configured provider name.
    public var provider: String
    public var endpoint: Endpoint
    /// The model the provider reported, or the requested one when it reported none.
    public var model: String
    /// The HTTP status returned to the client.
    public var status: Int
    public var outcome: Outcome
    /// Whether the response was streamed.
    public var stream: Bool
    /// Token usage, when known.
    public var usage: Usage?
    /// Milliseconds from request start to the end of the response.
    public var latencyMs: Int64?
    /// Milliseconds to the first streamed byte; nil when not streamed.
    public var ttftMs: Int64?
    /// Lowercase hex HMAC-SHA256 of the canonical prompt; nil when the request carried no prompt.
    public var promptHash: String?
    /// 64-bit SimHash of the normalised prompt text; nil when the request carried no prompt.
    public var promptSim: UInt64?
    /// Characters (Unicode scalars) in the normalised prompt text.
    public var promptChars: Int64?
    /// The first characters of the prompt after PII redaction, when the config keeps a preview.
    public var preview: String?
    /// The end user the client named (OpenAI `user` field or `X-Tally-User`).
    public var user: String?
    /// Tags from `X-Tally-Tags: k=v,k2=v2`.
    public var tags: [String: String]
    /// A short message when the call failed.
    public var error: String?
    /// The service tier the provider says it served the call on (`default`, `flex`, `priority`, `scale`, `standard`,
    /// `batch`, …), exactly as reported; nil when it reported none.
    public var serviceTier: String?
    /// Whether `usage` is the collector's estimate rather than the provider's report (a call cut off before the
    /// provider reported its usage).
    public var usageEstimated: Bool

    public init(
        version: Int = UsageEvent.currentVersion, id: String, timestamp: Int64, collector: String, key: String,
        provider: String, endpoint: Endpoint, model: String, status: Int, outcome: Outcome, stream: Bool,
        usage: Usage?, latencyMs: Int64? = nil, ttftMs: Int64? = nil, promptHash: String? = nil, promptSim: UInt64? = nil,
        promptChars: Int64? = nil, preview: String? = nil, user: String? = nil, tags: [String: String] = [:],
        error: String? = nil, serviceTier: String? = nil, usageEstimated: Bool = false
    ) {
        self.version = version
        self.id = id
        self.timestamp = timestamp
        self.collector = collector
        self.key = key
        self.provider = provider
        self.endpoint = endpoint
        self.model = model
        self.status = status
        self.outcome = outcome
        self.stream = stream
        self.usage = usage
        self.latencyMs = latencyMs
        self.ttftMs = ttftMs
        self.promptHash = promptHash
        self.promptSim = promptSim
        self.promptChars = promptChars
        self.preview = preview
        self.user = user
        self.tags = tags
        self.error = error
        self.serviceTier = serviceTier
        self.usageEstimated = usageEstimated
    }

    /// The API a call went to.
    public enum Endpoint: String, Sendable, CaseIterable {
        case chatCompletions = "chat.completions"
        case completions
        case responses
        case embeddings
        case messages
        case other
        /// Google Gemini's `generateContent` and `streamGenerateContent`.
        case generateContent = "generate_content"
    }

    /// How a call ended.
    public enum Outcome: String, Sendable, CaseIterable {
        case ok
        case upstreamError = "upstream_error"
        case clientAbort = "client_abort"
        case rejectedRevoked = "rejected_revoked"
        case rejectedUnknownKey = "rejected_unknown_key"
        case rejectedInvalid = "rejected_invalid"
        /// Forwarded to an endpoint the collector does not meter (files, batches, images, …), because the config's
        /// `allow:` lets its group through. Added with the endpoint policy: upgrade auditors before collectors.
        case unmetered
    }

    /// Token counts in the log's normalised meaning (`TokenCounts`).
    public typealias Usage = TokenCounts
}
