import TallyCore

/// `price-gaps.csv`: calls priced as far as their price entry allows, by provider, model, served tier and what the
/// entry lacked, with what the calls were priced at instead (`docs/pricing.md`). Empty but for its header when every
/// call had every price it needed.
public struct PriceGapsCSV: TextReportFile {
    public let name = "price-gaps.csv"

    public init() {}

    public func render(_ report: PeriodReport) -> String {
        var out = ""
        CSV.append(["provider", "model", "service_tier", "missing_price", "requests", "quantity", "unit", "priced_as"], to: &out)
        for g in report.priceGaps {
            CSV.append(
                [
                    CSV.text(g.provider), CSV.text(g.model), CSV.text(g.serviceTier ?? ""), g.gap.rawValue, String(g.requests),
                    String(g.quantity), g.gap.unit, g.gap.pricedAs,
                ], to: &out)
        }
        return out
    }
}
