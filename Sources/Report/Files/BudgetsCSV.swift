import TallyCore

/// `budgets.csv`: every budget in the period the report's clock falls in. `spent` includes unpriced calls at their
/// conservative estimate; `estimated` (the last column) is that part of it.
public struct BudgetsCSV: TextReportFile {
    public let name = "budgets.csv"

    public init() {}

    public func render(_ report: PeriodReport) -> String {
        var out = ""
        CSV.append(
            [
                "scope", "id", "budget_period", "period", "hard", "configured_limit", "limit", "spent", "utilisation",
                "projected", "status", "currency", "estimated",
            ], to: &out)
        for b in report.budgets {
            CSV.append(
                [
                    b.scope.rawValue, CSV.text(b.id), b.budget.period.rawValue, b.periodLabel, b.budget.hard ? "true" : "false",
                    CSV.money(b.budget.limit), CSV.money(b.limit), CSV.money(b.spend), BudgetsCSV.ratio(b.spend, b.limit),
                    CSV.money(b.projected ?? b.spend), b.state.rawValue, CSV.text(report.currency), CSV.money(b.estimated),
                ], to: &out)
        }
        return out
    }

    /// `spent / limit` rounded to four decimals (`0.8312`); empty for a zero limit.
    static func ratio(_ spent: Money, _ limit: Money) -> String {
        guard limit.picos > 0 else { return "" }
        return Money(picos: spent.picos * Money.scale / limit.picos).formatted(places: 4)
    }
}
