/// Token counts in the usage log's normalised meaning (`docs/usage-log.md`): `input` counts every billed input token
/// at any rate, and `cachedInput` and `cacheWrite` are parts of it (`cacheWrite1h` a part of `cacheWrite`); `output`
/// includes `reasoning`. `webSearchRequests` counts the provider's server-side web searches, which are billed per
/// request.
///
/// The one type for a call's counts, from its usage in the log to the sums in the ledger's rollups and the report's
/// rows (the rollups keep the five token counts; the 1-hour part and web searches stay with each call).
public struct TokenCounts: Sendable, Hashable {
    public var input: Int64
    public var output: Int64
    public var cachedInput: Int64
    public var cacheWrite: Int64
    public var reasoning: Int64
    /// The part of `cacheWrite` written with a one-hour lifetime (Anthropic's `ephemeral_1h_input_tokens`); the rest
    /// has the provider's default (five-minute) lifetime.
    public var cacheWrite1h: Int64
    /// Server-side web searches the provider ran for the call (Anthropic `server_tool_use.web_search_requests`, OpenAI
    /// Responses `web_search_call` items).
    public var webSearchRequests: Int64

    public init(
        input: Int64 = 0, output: Int64 = 0, cachedInput: Int64 = 0, cacheWrite: Int64 = 0, reasoning: Int64 = 0,
        cacheWrite1h: Int64 = 0, webSearchRequests: Int64 = 0
    ) {
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.reasoning = reasoning
        self.cacheWrite1h = cacheWrite1h
        self.webSearchRequests = webSearchRequests
    }

    public static let zero = TokenCounts()

    /// Why these counts break the rules above, or nil when they keep them.
    public var violation: String? {
        if input < 0 || output < 0 || cachedInput < 0 || cacheWrite < 0 || reasoning < 0 || cacheWrite1h < 0 || webSearchRequests < 0 {
            return "negative token count in usage"
        }
        if cacheWrite1h > cacheWrite { return "usage.cache_write_1h exceeds usage.cache_write" }
        if cachedInput > input - cacheWrite { return "usage.cached_input + usage.cache_write exceed usage.input" }
        if reasoning > output { return "usage.reasoning exceeds usage.output" }
        return nil
    }

    public static func += (lhs: inout TokenCounts, rhs: TokenCounts) {
        lhs.input += rhs.input
        lhs.output += rhs.output
        lhs.cachedInput += rhs.cachedInput
        lhs.cacheWrite += rhs.cacheWrite
        lhs.reasoning += rhs.reasoning
        lhs.cacheWrite1h += rhs.cacheWrite1h
        lhs.webSearchRequests += rhs.webSearchRequests
    }

    public static func -= (lhs: inout TokenCounts, rhs: TokenCounts) {
        lhs.input -= rhs.input
        lhs.output -= rhs.output
        lhs.cachedInput -= rhs.cachedInput
        lhs.cacheWrite -= rhs.cacheWrite
        lhs.reasoning -= rhs.reasoning
        lhs.cacheWrite1h -= rhs.cacheWrite1h
        lhs.webSearchRequests -= rhs.webSearchRequests
    }
}
