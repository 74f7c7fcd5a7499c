/// The service tier a provider served a call on, as pricing knows it.
///
/// Providers report tiers under their own names (OpenAI `default`, `flex`, `priority`, `scale`; Anthropic `standard`,
/// `priority`, `batch`); a price source names the tiers it prices (LiteLLM's `*_flex`, `*_priority`, `*_batches`
/// fields; a config's `tiers:`). `priceKey` maps both onto one name, so that a reported tier finds its price.
public enum ServiceTier {
    /// The tier names that mean the standard rate.
    static let standardNames: Set<String> = ["default", "standard", "auto", "on_demand", "standard_only"]

    /// The name a price source files `tier` under, or nil for the standard rate: lowercased, `batches` → `batch` (the
    /// name LiteLLM's fields use), `fast` → `priority` (as LiteLLM reads it); any other name is kept, so that a new tier
    /// finds a price a source gives for it and is otherwise listed as unpriced.
    public static func priceKey(_ tier: String) -> String? {
        let name = tier.lowercased()
        if name.isEmpty || standardNames.contains(name) { return nil }
        switch name {
        case "batches": return "batch"
        case "fast": return "priority"
        default: return name
        }
    }
}

/// How a call's price was applied, beyond the plain per-token rates: kept with each call in the ledger (its raw value
/// is stored, so never renumber), shown in the reports and in the FOCUS export's `x_` columns.
public struct PriceNotes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The call's input passed a long-context threshold of its price: the whole call was priced at those rates.
    public static let longContext = PriceNotes(rawValue: 1 << 0)
    /// The served tier has no price in the source: the call was priced at the standard rate and is listed.
    public static let tierUnpriced = PriceNotes(rawValue: 1 << 1)
    /// One-hour cache writes with no one-hour price in the source: priced at the default cache-write rate and listed.
    public static let cacheWrite1hUnpriced = PriceNotes(rawValue: 1 << 2)
    /// Web searches with no per-request price in the source: not in the cost, and listed.
    public static let webSearchUnpriced = PriceNotes(rawValue: 1 << 3)
    /// The usage is the collector's estimate, not the provider's report.
    public static let usageEstimated = PriceNotes(rawValue: 1 << 4)
    /// The call had no price of its own and counts toward budgets at the conservative estimate.
    public static let costEstimated = PriceNotes(rawValue: 1 << 5)

    /// The notes that say part of a call is missing from its cost or priced below what the provider may charge.
    public static let gaps: PriceNotes = [.tierUnpriced, .cacheWrite1hUnpriced, .webSearchUnpriced]
}
