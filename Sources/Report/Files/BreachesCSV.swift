import TallyCore

/// `breaches.csv`: budgets that reached their limit, what was revoked and which priority keys overrode it.
public struct BreachesCSV: TextReportFile {
    public let name = "breaches.csv"

    public init() {}

    public func render(_ report: PeriodReport) -> String {
        var out = ""
        CSV.append(
            [
                "crossed_at", "scope", "id", "budget_period", "period", "hard", "spent", "limit", "currency", "action",
                "revoked_keys", "override_keys",
            ], to: &out)
        for b in report.breaches {
            CSV.append(
                [
                    CSV.time(b.crossedAt), b.scope, CSV.text(b.id), b.budgetPeriod, b.periodLabel, b.hard ? "true" : "false",
                    CSV.money(b.spent), CSV.money(b.limit), CSV.text(report.currency), b.action,
                    CSV.text(b.revokedKeys.joined(separator: " ")),
                    CSV.text(b.overrideKeys.joined(separator: " ")),
                ], to: &out)
        }
        return out
    }
}
