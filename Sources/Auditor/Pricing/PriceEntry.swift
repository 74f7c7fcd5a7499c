import TallyConfig
import TallyCore
import TallyLedger

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

/// The prices of one model from one moment on (a `ModelPrice`, the same shape the config uses), and where they came
/// from. Its fields read through: `entry.input`, `entry.from`.
@dynamicMemberLookup
public struct PriceEntry: Sendable, Hashable {
    public var price: ModelPrice
    public var source: PriceSource

    public init(_ price: ModelPrice, source: PriceSource) {
        self.price = price
        self.source = source
    }

    public subscript<T>(dynamicMember keyPath: KeyPath<ModelPrice, T>) -> T {
        price[keyPath: keyPath]
    }

    /// The exact cost of a call's tokens (`docs/pricing.md`):
    /// (input − cached − write) × input price + cached × cached price + write × cache-write price
    /// + (output − reasoning) × output price + reasoning × reasoning price,
    /// where a missing cached or cache-write price is the input price and a missing reasoning price the output price.
    public func cost(_ tokens: TokenCounts) -> Money {
        let plainInput = max(0, tokens.input - tokens.cachedInput - tokens.cacheWrite)
        let plainOutput = max(0, tokens.output - tokens.reasoning)
        return price.input.cost(tokens: plainInput)
            + (price.cachedInput ?? price.input).cost(tokens: tokens.cachedInput)
            + (price.cacheWrite ?? price.input).cost(tokens: tokens.cacheWrite)
            + price.output.cost(tokens: plainOutput)
            + (price.reasoning ?? price.output).cost(tokens: tokens.reasoning)
    }
}
