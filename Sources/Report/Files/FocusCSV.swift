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
        "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingCategory",
        "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ResourceId", "ResourceName", "ResourceType",
        "ServiceCategory", "ServiceName", "ServiceSubcategory", "SkuId", "SubAccountId", "SubAccountName", "Tags",
    ]
    public static let focusExtensionColumns = [
        "x_Org", "x_Team", "x_Project", "x_User", "x_Key", "x_Provider", "x_Model", "x_Requests", "x_InputTokens",
        "x_CachedInputTokens", "x_CacheWriteTokens", "x_OutputTokens", "x_ReasoningTokens", "x_UnpricedRequests", "x_Period",
    ]

    /// One FOCUS row per attribution row. Costs are what Tally priced (no discounts are known, so billed, effective,
    /// list and contracted cost agree); an all-unpriced row has cost 0 and says so in `x_UnpricedRequests`.
    public func render(_ report: PeriodReport) -> String {
        var out = ""
        out.reserveCapacity(report.attribution.count * 700)
        CSV.append(Self.focusColumns + Self.focusExtensionColumns, to: &out)
        let billingStart = CSV.time(report.start)
        let billingEnd = CSV.time(report.end)
        let currency = CSV.text(report.currency)
        for r in report.attribution {
            let cost = CSV.money(r.cost)
            let tokens = r.tokens.input + r.tokens.output
            let providerName = CSV.text(report.providerNames[r.provider] ?? r.provider)
            let description =
                "\(r.model) on \(report.providerNames[r.provider] ?? r.provider): \(r.requests) requests, \(r.tokens.input) input and "
                + "\(r.tokens.output) output tokens" + (r.unpricedRequests > 0 ? " (\(r.unpricedRequests) unpriced)" : "")
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
            CSV.append(
                [
                    cost, CSV.text(r.org), CSV.text(r.org), currency, billingEnd, billingStart,
                    "Usage", "", CSV.text(description), "Usage-Based", CSV.time(r.dayEnd), CSV.time(r.dayStart),
                    String(tokens), "Tokens", cost, cost, providerName, cost, "Standard",
                    String(tokens), "Tokens", providerName, providerName, CSV.text(r.key), CSV.text(r.key), "API Key",
                    "AI and Machine Learning", CSV.text((report.providerNames[r.provider] ?? r.provider) + " API"), "Generative AI",
                    CSV.text(r.provider + "/" + r.model), CSV.text(r.team), CSV.text(r.team),
                    CSV.text(String(decoding: tags, as: UTF8.self)),
                    CSV.text(r.org), CSV.text(r.team), CSV.text(r.project), CSV.text(r.user), CSV.text(r.key), CSV.text(r.provider),
                    CSV.text(r.model), String(r.requests), String(r.tokens.input), String(r.tokens.cachedInput),
                    String(r.tokens.cacheWrite), String(r.tokens.output),
                    String(r.tokens.reasoning), String(r.unpricedRequests), report.period,
                ], to: &out)
        }
        return out
    }
}
