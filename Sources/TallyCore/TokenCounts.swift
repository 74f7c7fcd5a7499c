/// Token counts in the usage log's normalised meaning (`docs/usage-log.md`): `input` counts every billed input token
/// at any rate, and `cachedInput` and `cacheWrite` are parts of it; `output` includes `reasoning`.
///
/// The one type for the five counts, from a call's usage in the log to the sums in the ledger's rollups and the
/// report's rows.
public struct TokenCounts: Sendable, Hashable {
    public var input: Int64
    public var output: Int64
    public var cachedInput: Int64
    public var cacheWrite: Int64
    public var reasoning: Int64

    public init(input: Int64 = 0, output: Int64 = 0, cachedInput: Int64 = 0, cacheWrite: Int64 = 0, reasoning: Int64 = 0) {
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.reasoning = reasoning
    }

    public static let zero = TokenCounts()

    /// Why these counts break the rules above, or nil when they keep them.
    public var violation: String? {
        if input < 0 || output < 0 || cachedInput < 0 || cacheWrite < 0 || reasoning < 0 {
            return "negative token count in usage"
        }
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
    }

    public static func -= (lhs: inout TokenCounts, rhs: TokenCounts) {
        lhs.input -= rhs.input
        lhs.output -= rhs.output
        lhs.cachedInput -= rhs.cachedInput
        lhs.cacheWrite -= rhs.cacheWrite
        lhs.reasoning -= rhs.reasoning
    }
}
