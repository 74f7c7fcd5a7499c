import TallyCore

/// A price as the ledger's `prices` rows keep it: where it came from, the model, from when, and its per-token prices.
package struct StoredPrice: Sendable, Hashable {
    package var source: String
    package var model: String
    package var from: Int64?
    package var input: TokenPrice
    package var output: TokenPrice
    package var cachedInput: TokenPrice?
    package var cacheWrite: TokenPrice?
    package var reasoning: TokenPrice?
    /// Tiers, long-context rates, one-hour cache writes and web searches as canonical JSON (`docs/ledger.md`), or nil
    /// when the price has none.
    package var dimensions: String?

    package init(
        source: String, model: String, from: Int64?, input: TokenPrice, output: TokenPrice, cachedInput: TokenPrice?,
        cacheWrite: TokenPrice?, reasoning: TokenPrice?, dimensions: String? = nil
    ) {
        self.source = source
        self.model = model
        self.from = from
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.reasoning = reasoning
        self.dimensions = dimensions
    }
}
