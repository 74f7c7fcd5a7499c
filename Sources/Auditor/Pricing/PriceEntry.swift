import TallyConfig

/// Where a price came from, so that a figure can be explained months later.
public enum PriceSource: Sendable, Hashable, CustomStringConvertible {
    /// Tally's built-in table, with the date its prices were taken.
    case builtin(taken: String)
    /// A LiteLLM `model_prices_and_context_window.json`.
    case litellm(file: String)
    /// The config's `pricing.models`.
    case config

    public var description: String {
        switch self {
        case .builtin(let taken): return "builtin:\(taken)"
        case .litellm(let file): return "litellm:\(file)"
        case .config: return "config"
        }
    }

    /// Rising priority: the config wins over LiteLLM, which wins over the built-in table.
    var rank: Int {
        switch self {
        case .config: return 0
        case .litellm: return 1
        case .builtin: return 2
        }
    }
}

/// The prices of one model from one moment on, from one source.
public struct PriceEntry: Sendable, Hashable {
    /// The name as the source writes it (`gpt-4o`, `gemini/gemini-2.5-pro`).
    public var model: String
    public var input: TokenPrice
    public var output: TokenPrice
    public var cachedInput: TokenPrice?
    public var cacheWrite: TokenPrice?
    public var reasoning: TokenPrice?
    /// In force from this moment (milliseconds since the epoch); nil means always.
    public var from: Int64?
    public var source: PriceSource

    public init(model: String, input: TokenPrice, output: TokenPrice, cachedInput: TokenPrice? = nil, cacheWrite: TokenPrice? = nil,
                reasoning: TokenPrice? = nil, from: Int64? = nil, source: PriceSource) {
        self.model = model
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.reasoning = reasoning
        self.from = from
        self.source = source
    }

    /// The exact cost of a call's tokens (`docs/pricing.md`):
    /// (input − cached − write) × input price + cached × cached price + write × cache-write price
    /// + (output − reasoning) × output price + reasoning × reasoning price,
    /// where a missing cached or cache-write price is the input price and a missing reasoning price the output price.
    public func cost(input: Int64, output: Int64, cachedInput: Int64, cacheWrite: Int64, reasoning: Int64) -> Money {
        let plainInput = max(0, input - cachedInput - cacheWrite)
        let plainOutput = max(0, output - reasoning)
        return self.input.cost(tokens: plainInput)
            + (self.cachedInput ?? self.input).cost(tokens: cachedInput)
            + (self.cacheWrite ?? self.input).cost(tokens: cacheWrite)
            + self.output.cost(tokens: plainOutput)
            + (self.reasoning ?? self.output).cost(tokens: reasoning)
    }
}

extension PriceEntry {
    /// A config `pricing.models` entry.
    public init(_ price: ModelPrice) {
        self.init(model: price.model, input: price.input, output: price.output, cachedInput: price.cachedInput,
                  cacheWrite: price.cacheWrite, reasoning: price.reasoning, from: price.from, source: .config)
    }
}
