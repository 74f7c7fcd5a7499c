import TallyCore

/// `focus.csv`: the attribution rows as a FinOps FOCUS 1.2 cost and usage export, so FinOps tools load LLM spend
/// beside cloud bills (`docs/reports.md` maps every column).
public struct FocusCSV: TextReportFile {
    public let name = "focus.csv"

    public init() {}

    /// FOCUS columns in the order written, then Tally's own, prefixed `x_`.
    public static let focusColumns = [
        "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart",
        "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
        "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost",
        "PricingCategory",
        "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ResourceId", "ResourceName", "ResourceType",
        "ServiceCategory", "ServiceName", "ServiceSubcategory", "SkuId", "SubAccountId", "SubAccountName", "Tags",
    ]
    public static let focusExtensionColumns = [
        "x_Org", "x_Team", "x_Project", "x_User", "x_Key", "x_Provider", "x_Model", "x_Requests", "x_InputTokens",
        "x_CachedInputTokens", "x_CacheWriteTokens", "x_OutputTokens", "x_ReasoningTokens", "x_UnpricedRequests", "x_Period",
        "x_ServiceTier", "x_LongContext", "x_UsageEstimated", "x_PriceGaps",
    ]

    /// One FOCUS row per attribution row, or, where some of its calls were served on a reported tier or priced with
    /// notes, one per such part and one for the rest. Costs are what Tally priced (no discounts are known, so billed,
    /// effective, list and contracted cost agree); an all-unpriced row has cost 0 and says so in `x_UnpricedRequests`.
    /// Prices are per million tokens, so `PricingQuantity` is the tokens in millions (an exact decimal) and
    /// `PricingUnit` `1000000 Tokens`; `InvoiceId` is empty (null) while no invoice is known.
    public func render(_ report: PeriodReport) -> String {
        var out = ""
        out.reserveCapacity(report.attribution.count * 760)
        CSV.append(Self.focusColumns + Self.focusExtensionColumns, to: &out)
        for r in report.attribution {
            var rest = PricingSplit(
                serviceTier: nil, notes: [], requests: r.requests, tokens: r.tokens, cost: r.cost, unpricedRequests: r.unpricedRequests)
            for split in r.splits {
                rest.requests -= split.requests
                rest.tokens -= split.tokens
                rest.cost -= split.cost
                rest.unpricedRequests -= split.unpricedRequests
            }
            if rest.requests > 0 || r.splits.isEmpty { appendRow(r, rest, report, to: &out) }
            for split in r.splits { appendRow(r, split, report, to: &out) }
        }
        return out
    }

    /// One FOCUS row: the calls of `part` in attribution row `r`.
    private func appendRow(_ r: AttributionRow, _ part: PricingSplit, _ report: PeriodReport, to out: inout String) {
        let cost = CSV.money(part.cost)
        let tokens = part.tokens.input + part.tokens.output
        let providerDisplay = report.providerNames[r.provider] ?? r.provider
        let providerName = CSV.text(providerDisplay)
        var description =
            "\(r.model) on \(providerDisplay): \(part.requests) requests, \(part.tokens.input) input and "
            + "\(part.tokens.output) output tokens"
        if let tier = part.serviceTier { description += ", \(tier) tier" }
        if part.notes.contains(.longContext) { description += ", long context" }
        if part.unpricedRequests > 0 { description += " (\(part.unpricedRequests) unpriced)" }
        var tags: [UInt8] = [UInt8(ascii: "{")]
        for (i, (name, value)) in [("org", r.org), ("team", r.team), ("project", r.project), ("user", r.user), ("key", r.key)]
            .enumerated()
        {
            if i > 0 { tags.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(name, to: &tags)
            tags.append(UInt8(ascii: ":"))
            JSONWriter.appendString(value, to: &tags)
        }
        tags.append(UInt8(ascii: "}"))
        let gaps = PriceGapRow.Gap.allCases.filter { part.notes.contains($0.note) }.map(\.rawValue).joined(separator: ";")
        CSV.append(
            [
                cost, CSV.text(r.org), CSV.text(r.org), CSV.text(report.currency), CSV.time(report.end), CSV.time(report.start),
                "Usage", "", CSV.text(description), "Usage-Based", CSV.time(r.dayEnd), CSV.time(r.dayStart),
                String(tokens), "Tokens", cost, cost, "", providerName, cost, "Standard",
                Self.millions(tokens), "1000000 Tokens", providerName, providerName, CSV.text(r.key), CSV.text(r.key), "API Key",
                "AI and Machine Learning", CSV.text(providerDisplay + " API"), "Generative AI",
                CSV.text(r.provider + "/" + r.model), CSV.text(r.team), CSV.text(r.team),
                CSV.text(String(decoding: tags, as: UTF8.self)),
                CSV.text(r.org), CSV.text(r.team), CSV.text(r.project), CSV.text(r.user), CSV.text(r.key), CSV.text(r.provider),
                CSV.text(r.model), String(part.requests), String(part.tokens.input), String(part.tokens.cachedInput),
                String(part.tokens.cacheWrite), String(part.tokens.output),
                String(part.tokens.reasoning), String(part.unpricedRequests), report.period,
                CSV.text(part.serviceTier ?? ""), part.notes.contains(.longContext) ? "true" : "false",
                part.notes.contains(.usageEstimated) ? "true" : "false", gaps,
            ], to: &out)
    }

    /// `tokens` in millions, exactly, with six decimal places (`279514` → `0.279514`): always written with a decimal
    /// point, so that readers that infer types from the text see a decimal.
    static func millions(_ tokens: Int64) -> String {
        let whole = tokens / 1_000_000
        let fraction = String(tokens % 1_000_000)
        return "\(whole)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }
}
