import TallyCore

/// `attribution.csv`: one row per day × org × team × project × user × key × provider × model. Its cost column sums
/// exactly to the report's total; a row whose calls are all unpriced has an empty cost.
public struct AttributionCSV: TextReportFile {
    public let name = "attribution.csv"

    public init() {}

    public func render(_ report: PeriodReport) -> String {
        var out = ""
        CSV.append(
            [
                "date", "org", "team", "project", "user", "key", "provider", "model", "requests", "input_tokens",
                "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens", "cost", "currency",
                "unpriced_requests",
            ], to: &out)
        let currency = CSV.text(report.currency)
        for r in report.attribution {
            CSV.append(
                [
                    r.date, CSV.text(r.org), CSV.text(r.team), CSV.text(r.project), CSV.text(r.user), CSV.text(r.key),
                    CSV.text(r.provider), CSV.text(r.model), String(r.requests), String(r.tokens.input), String(r.tokens.cachedInput),
                    String(r.tokens.cacheWrite), String(r.tokens.output), String(r.tokens.reasoning), r.isUnpriced ? "" : CSV.money(r.cost),
                    currency,
                    String(r.unpricedRequests),
                ], to: &out)
        }
        return out
    }
}
