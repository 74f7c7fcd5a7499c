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
    /// For LiteLLM entries: the file's `litellm_provider` and `mode` (`chat`, `embedding`, …); nil for config prices.
    public var litellmProvider: String?
    public var mode: String?

    public init(_ price: ModelPrice, source: PriceSource, litellmProvider: String? = nil, mode: String? = nil) {
        self.price = price
        self.source = source
        self.litellmProvider = litellmProvider
        self.mode = mode
    }

    public subscript<T>(dynamicMember keyPath: KeyPath<ModelPrice, T>) -> T {
        price[keyPath: keyPath]
    }

    /// The exact cost of a call's tokens at the standard tier (`cost(_:tier:)` without a tier).
    public func cost(_ tokens: TokenCounts) -> Money { cost(tokens, tier: nil).cost }

    /// The exact cost of a call (`docs/pricing.md`), with LiteLLM's field semantics, so that a figure can be checked by
    /// hand against its price file:
    /// 1. The rates: the served tier's where the price has the tier (a rate the tier leaves out is the standard one);
    ///    a tier it does not price gets the standard rates and the note `tierUnpriced`.
    /// 2. Long context: when the whole input is above a threshold the price has (the highest one passed), every token
    ///    kind with a rate above it is priced at that rate, the tier's first.
    /// 3. (input − cached − write) × input + cached × cached + (write − write_1h) × write + write_1h × write_1h
    ///    + (output − reasoning) × output + reasoning × reasoning + web searches × per-search price,
    ///    where a missing cached or write rate is the input rate, a missing one-hour rate the write rate (noted when
    ///    used), a missing reasoning rate the output rate, and a missing per-search price adds nothing (noted).
    public func cost(_ tokens: TokenCounts, tier reportedTier: String?) -> PricedCall {
        cost(tokens, tierKey: reportedTier.flatMap(ServiceTier.priceKey))
    }

    /// `cost(_:tier:)` with the tier already mapped by `ServiceTier.priceKey` (nil: the standard tier), so that a
    /// caller pricing many calls maps each distinct tier name once.
    public func cost(_ tokens: TokenCounts, tierKey requestedKey: String?) -> PricedCall {
        // The common case, a standard-tier call of a price without dimensions, as cheaply as the plain formula.
        if requestedKey == nil, price.longContext.isEmpty, tokens.cacheWrite1h == 0, tokens.webSearchRequests == 0 {
            let plainInput = max(0, tokens.input - tokens.cachedInput - tokens.cacheWrite)
            let plainOutput = max(0, tokens.output - tokens.reasoning)
            let cost =
                price.input.cost(tokens: plainInput) + (price.cachedInput ?? price.input).cost(tokens: tokens.cachedInput)
                + (price.cacheWrite ?? price.input).cost(tokens: tokens.cacheWrite) + price.output.cost(tokens: plainOutput)
                + (price.reasoning ?? price.output).cost(tokens: tokens.reasoning)
            return PricedCall(cost: cost, notes: [])
        }
        var notes: PriceNotes = []
        var tierRates: TokenRates?
        var tierKey: String?
        if let key = requestedKey {
            if let rates = price.tiers[key], rates.input != nil {
                tierRates = rates
                tierKey = key
            } else {
                notes.insert(.tierUnpriced)
            }
        }
        let standard = price.standardRates
        func base(_ kind: KeyPath<TokenRates, TokenPrice?>) -> TokenPrice? { tierRates?[keyPath: kind] ?? standard[keyPath: kind] }
        var resolve = base
        if let band = price.longContext.last(where: { tokens.input > $0.above }), band.rates.input != nil {
            notes.insert(.longContext)
            let bandTier = tierKey.flatMap { band.tiers[$0] }
            resolve = { kind in bandTier?[keyPath: kind] ?? band.rates[keyPath: kind] ?? base(kind) }
        }
        let input = resolve(\.input) ?? price.input
        let output = resolve(\.output) ?? price.output
        let cached = resolve(\.cachedInput) ?? input
        let write = resolve(\.cacheWrite) ?? input
        let write1h: TokenPrice
        if let known = resolve(\.cacheWrite1h) {
            write1h = known
        } else {
            write1h = write
            if tokens.cacheWrite1h > 0 { notes.insert(.cacheWrite1hUnpriced) }
        }
        let reasoning = price.reasoning ?? output

        let plainInput = max(0, tokens.input - tokens.cachedInput - tokens.cacheWrite)
        let oneHour = min(tokens.cacheWrite1h, tokens.cacheWrite)
        let plainOutput = max(0, tokens.output - tokens.reasoning)
        var cost =
            input.cost(tokens: plainInput) + cached.cost(tokens: tokens.cachedInput)
            + write.cost(tokens: tokens.cacheWrite - oneHour) + write1h.cost(tokens: oneHour)
            + output.cost(tokens: plainOutput) + reasoning.cost(tokens: tokens.reasoning)
        if tokens.webSearchRequests > 0 {
            if let perSearch = price.webSearchRequest {
                cost += perSearch * Int128(tokens.webSearchRequests)
            } else {
                notes.insert(.webSearchUnpriced)
            }
        }
        return PricedCall(cost: cost, notes: notes)
    }
}

/// A call's cost and how its price was applied.
public struct PricedCall: Sendable, Equatable {
    public var cost: Money
    public var notes: PriceNotes
}
