import TallyConfig
import TallyCore
import TallyLedger

/// Every known price, and the rule that picks the one for a call.
///
/// Sources in falling priority: the config's `pricing.models`, the LiteLLM file, the built-in prices. A price is found
/// the way a person would look it up (`docs/pricing.md`): an exact name in any source beats a fuzzy match in any
/// source, and within a source a name qualified by the provider beats the bare one. So:
/// 1. the exact name, source by source: qualified by the provider (`gemini/gemini-2.5-pro`, `azure/gpt-4o`: its
///    configured name, then the prefix LiteLLM uses for its kind), then bare (`gpt-4o-2024-05-13`);
/// 2. the name with a dated suffix stripped (`gpt-4o-2024-08-06` → `gpt-4o`), source by source, qualified then bare.
/// Of the entries found, the one with the latest `from` not after the call is used.
public struct PriceBook: Sendable {
    /// Entries by source rank, then by name, each list sorted by `from` (nil first).
    private let bySource: [[String: [PriceEntry]]]
    /// The name prefixes of each provider, by its configured name: the name itself, and LiteLLM's for its kind.
    private let prefixes: [String: [String]]
    /// Price entries that were skipped because a price could not be held exactly: their models stay unpriced.
    public let warnings: [String]
    /// The config's currency, and what a dollar is in it over time (for the USD sources, in another currency).
    private let currency: String
    private let usdRates: [UsdRate]
    /// The per-token rates an unpriced call of each provider counts toward budgets at, by provider name; `fallback`
    /// for a provider the config does not name.
    private let estimates: [String: (input: TokenPrice, output: TokenPrice)]
    private let fallbackEstimate: (input: TokenPrice, output: TokenPrice)?

    public init(
        entries: [PriceEntry], providers: [Provider] = [], warnings: [String] = [], currency: String = "USD", usdRates: [UsdRate] = [],
        unpricedEstimate: TokenRates? = nil
    ) {
        self.currency = currency
        self.usdRates = usdRates.sorted { ($0.from ?? .min) < ($1.from ?? .min) }
        // The conservative estimate: the configured rates, else the highest input and output rates among the prices
        // that could apply to the provider (its kind's LiteLLM entries for calls, and the config's own).
        func convert(_ price: TokenPrice, _ entry: PriceEntry) -> TokenPrice {
            guard entry.source != .config, currency != "USD", let rate = usdRates.max(by: { ($0.from ?? .min) < ($1.from ?? .min) }) else {
                return price
            }
            return TokenPrice(picosPerToken: PriceBook.converted(price.picosPerToken, micros: rate.micros))
        }
        func highest(_ candidates: [PriceEntry]) -> (input: TokenPrice, output: TokenPrice)? {
            guard !candidates.isEmpty else { return nil }
            let input = candidates.map { convert($0.price.input, $0) }.max()!
            let output = candidates.map { convert($0.price.output, $0) }.max()!
            return (input, output)
        }
        let usable = entries.filter { $0.mode.map { ["chat", "responses", "completion", "embedding"].contains($0) } ?? true }
        var estimates: [String: (input: TokenPrice, output: TokenPrice)] = [:]
        if let configured = unpricedEstimate, let input = configured.input, let output = configured.output {
            for provider in providers { estimates[provider.name] = (input, output) }
            fallbackEstimate = (input, output)
        } else {
            for provider in providers {
                let kinds = Self.litellmProviders(provider.kind)
                estimates[provider.name] = highest(usable.filter { $0.litellmProvider.map(kinds.contains) ?? true })
            }
            fallbackEstimate = highest(usable)
        }
        self.estimates = estimates

        var bySource: [[String: [PriceEntry]]] = [[:], [:], [:]]
        for entry in entries { bySource[entry.source.rank][entry.price.model, default: []].append(entry) }
        for rank in bySource.indices {
            for (model, list) in bySource[rank] {
                bySource[rank][model] = list.sorted { ($0.from ?? .min) < ($1.from ?? .min) }
            }
        }
        self.bySource = bySource
        var prefixes: [String: [String]] = [:]
        for provider in providers {
            var names = [provider.name]
            if let litellm = Self.litellmPrefix(provider.kind), litellm != provider.name { names.append(litellm) }
            prefixes[provider.name] = names
        }
        self.prefixes = prefixes
        self.warnings = warnings
    }

    /// The book for a config: its own prices, the LiteLLM file it names (if any) and the built-in prices. The last two
    /// are USD: in another currency they are used only through `pricing.usd_rate`, and without it they are left out
    /// with a warning that says so (calls only they would price stay unpriced).
    public init(config: Config) throws(LiteLLMPrices.LoadError) {
        let usdUsable = config.currency == "USD" || !config.pricing.usdRates.isEmpty
        var entries: [PriceEntry] = []
        var warnings: [String] = []
        if usdUsable {
            entries = BuiltinPrices.entries
            warnings = BuiltinPrices.skipped.map { "built-in prices: \($0)" }
        } else {
            warnings.append(
                "the built-in prices are in USD and the config's currency is \(config.currency): without pricing.usd_rate they are "
                    + "not used, and calls only they would price stay unpriced")
        }
        if let file = config.pricing.litellmFile {
            let parsed = try LiteLLMPrices.load(path: config.resolve(file))
            if usdUsable {
                entries += parsed.entries
                warnings += parsed.skipped.map { "pricing.litellm_file: \($0)" }
            } else {
                warnings.append("pricing.litellm_file is in USD: without pricing.usd_rate it is not used")
            }
        }
        entries += config.pricing.models.map { PriceEntry($0, source: .config) }
        self.init(
            entries: entries, providers: config.providers, warnings: warnings, currency: config.currency, usdRates: config.pricing.usdRates,
            unpricedEstimate: config.pricing.unpricedEstimate)
    }

    /// The cost of a call priced by `entry`, in the config's currency: a USD source's cost is converted at the
    /// `pricing.usd_rate` in force at the call, rounded half to even to 10⁻¹² of the currency; nil when no rate is in
    /// force yet (the call stays unpriced).
    public func cost(_ entry: PriceEntry, _ tokens: TokenCounts, tier: String?, at timestamp: Int64) -> PricedCall? {
        cost(entry, tokens, tierKey: tier.flatMap(ServiceTier.priceKey), at: timestamp)
    }

    /// `cost(_:_:tier:at:)` with the tier already mapped by `ServiceTier.priceKey`.
    public func cost(_ entry: PriceEntry, _ tokens: TokenCounts, tierKey: String?, at timestamp: Int64) -> PricedCall? {
        var priced = entry.cost(tokens, tierKey: tierKey)
        guard entry.source != .config, currency != "USD" else { return priced }
        guard let rate = usdRates.last(where: { ($0.from ?? .min) <= timestamp }) else { return nil }
        priced.cost = Money(picos: Self.converted(priced.cost.picos, micros: rate.micros))
        return priced
    }

    /// `picos` × `micros` / 10⁶, rounded half to even.
    static func converted(_ picos: Int128, micros: Int64) -> Int128 {
        let product = picos * Int128(micros)
        let (quotient, remainder) = product.quotientAndRemainder(dividingBy: 1_000_000)
        let twice = remainder.magnitude * 2
        if twice > 1_000_000 || (twice == 1_000_000 && quotient % 2 != 0) { return quotient + (product < 0 ? -1 : 1) }
        return quotient
    }

    /// How one call is priced: by which entry, at what cost and with which notes, or, unpriced, at what estimate. The
    /// one rule the ingest and re-pricing share.
    public func price(
        _ schedule: PriceSchedule, tokens: TokenCounts, tier: String?, provider: String, at timestamp: Int64, usageEstimated: Bool
    ) -> CallPrice {
        price(
            schedule, tokens: tokens, tierKey: tier.flatMap(ServiceTier.priceKey), provider: provider, at: timestamp,
            usageEstimated: usageEstimated)
    }

    /// `price(_:tokens:tier:provider:at:usageEstimated:)` with the tier already mapped by `ServiceTier.priceKey`.
    public func price(
        _ schedule: PriceSchedule, tokens: TokenCounts, tierKey: String?, provider: @autoclosure () -> String, at timestamp: Int64,
        usageEstimated: Bool
    ) -> CallPrice {
        var notes: PriceNotes = usageEstimated ? .usageEstimated : []
        if let entry = schedule.entry(at: timestamp), let priced = cost(entry, tokens, tierKey: tierKey, at: timestamp) {
            notes.formUnion(priced.notes)
            return CallPrice(entry: entry, cost: priced.cost, estimate: nil, notes: notes)
        }
        let estimate = self.estimate(tokens, provider: provider())
        if estimate != nil { notes.insert(.costEstimated) }
        return CallPrice(entry: nil, cost: nil, estimate: estimate, notes: notes)
    }

    /// What an unpriced call with `tokens` to `provider` counts toward budgets: every input token at the estimate's
    /// input rate, every output token at its output rate (cached and reasoning tokens included, so never less than
    /// any price would give). Nil when no price at all is known.
    public func estimate(_ tokens: TokenCounts, provider: String) -> Money? {
        guard let rates = estimates[provider] ?? fallbackEstimate else { return nil }
        return rates.input.cost(tokens: tokens.input) + rates.output.cost(tokens: tokens.output)
    }

    /// The estimate's per-million rates for `provider`, for messages.
    public func estimateRates(provider: String) -> (input: TokenPrice, output: TokenPrice)? {
        estimates[provider] ?? fallbackEstimate
    }

    /// LiteLLM's `litellm_provider` values for a provider kind.
    static func litellmProviders(_ kind: ProviderKind) -> Set<String> {
        switch kind {
        case .openai: ["openai", "text-completion-openai"]
        case .anthropic: ["anthropic"]
        case .gemini: ["gemini"]
        case .azure: ["azure"]
        }
    }

    /// LiteLLM's name prefix for a provider kind's models, where its file qualifies them (`gemini/…`, `azure/…`).
    static func litellmPrefix(_ kind: ProviderKind) -> String? {
        switch kind {
        case .gemini: "gemini"
        case .azure: "azure"
        case .openai, .anthropic: nil
        }
    }

    /// The entry that prices a call to `model` through `provider` at `timestamp` (milliseconds), or nil if none does.
    public func price(model: String, provider: String?, at timestamp: Int64) -> PriceEntry? {
        schedule(model: model, provider: provider).entry(at: timestamp)
    }

    /// Every entry that could price calls to `model` through `provider`, in the order the rule tries them; look up
    /// once per model and ask it per call.
    public func schedule(model: String, provider: String?) -> PriceSchedule {
        var lists: [[PriceEntry]] = []
        for tier in candidateNames(model: model, provider: provider) {
            for source in bySource {
                for name in tier {
                    if let list = source[name] { lists.append(list) }
                }
            }
        }
        return PriceSchedule(lists: lists)
    }

    /// The names to look up in tiers, best first: the exact name (qualified, then bare), then the name with a dated
    /// suffix stripped. Each tier is tried in every source before the next.
    func candidateNames(model: String, provider: String?) -> [[String]] {
        let qualifiers = provider.map { prefixes[$0] ?? ($0.isEmpty ? [] : [$0]) } ?? []
        func tier(_ name: String) -> [String] { qualifiers.map { "\($0)/\(name)" } + [name] }
        var tiers = [tier(model)]
        if let stripped = Self.strippedDate(model) { tiers.append(tier(stripped)) }
        return tiers
    }

    /// `model` without a trailing `-YYYY-MM-DD` or `-YYYYMMDD`, or nil if it has none.
    static func strippedDate(_ model: String) -> String? {
        let bytes = Array(model.utf8)
        func digits(_ range: Range<Int>) -> Bool { range.allSatisfy { bytes[$0] >= 0x30 && bytes[$0] <= 0x39 } }
        let n = bytes.count
        if n > 11, bytes[n - 11] == UInt8(ascii: "-"), bytes[n - 6] == UInt8(ascii: "-"), bytes[n - 3] == UInt8(ascii: "-"),
            digits(n - 10..<n - 6), digits(n - 5..<n - 3), digits(n - 2..<n)
        {
            return String(decoding: bytes[0..<(n - 11)], as: UTF8.self)
        }
        if n > 9, bytes[n - 9] == UInt8(ascii: "-"), digits(n - 8..<n), bytes[n - 8] == UInt8(ascii: "2") {
            return String(decoding: bytes[0..<(n - 9)], as: UTF8.self)
        }
        return nil
    }
}

/// A call's price: the entry and cost, or for an unpriced call nil and the estimate it counts toward budgets at.
public struct CallPrice: Sendable {
    public var entry: PriceEntry?
    public var cost: Money?
    public var estimate: Money?
    public var notes: PriceNotes
}

/// The price lists that may apply to one model, in rule order: the first list with an entry in force wins.
public struct PriceSchedule: Sendable {
    /// Each list sorted by `from`, nil first.
    let lists: [[PriceEntry]]

    /// Every entry, in rule order: what a fingerprint of the schedule is made of.
    var entries: [PriceEntry] { lists.flatMap { $0 } }

    /// True when no source knows the model at all.
    public var isEmpty: Bool { lists.isEmpty }

    /// The entry in force at `timestamp` (milliseconds): in the first list that has one, the latest `from` not after it.
    public func entry(at timestamp: Int64) -> PriceEntry? {
        position(at: timestamp).map { lists[$0.list][$0.index] }
    }

    /// Where `entry(at:)` finds its entry, so that a caller can cache per position instead of hashing entries.
    func position(at timestamp: Int64) -> (list: Int, index: Int)? {
        for (l, list) in lists.enumerated() {
            if let i = list.lastIndex(where: { ($0.from ?? .min) <= timestamp }) { return (l, i) }
        }
        return nil
    }

    subscript(position: (list: Int, index: Int)) -> PriceEntry { lists[position.list][position.index] }
}
