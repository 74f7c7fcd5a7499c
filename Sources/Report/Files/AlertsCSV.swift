import TallyCore

/// `alerts.csv`: each threshold crossing recorded in the period, oldest first.
public struct AlertsCSV: TextReportFile {
    public let name = "alerts.csv"

    public init() {}

    public func render(_ report: PeriodReport) -> String {
        var out = ""
        CSV.append(
            [
                "crossed_at", "scope", "id", "budget_period", "period", "threshold", "spent", "limit", "currency", "notified_at",
                "notify_error",
            ], to: &out)
        for a in report.alerts {
            CSV.append(
                [
                    CSV.time(a.crossedAt), a.scope.rawValue, CSV.text(a.id), a.period.rawValue, a.periodLabel, a.threshold.description,
                    CSV.money(a.spend),
                    CSV.money(a.limit), CSV.text(report.currency), CSV.time(a.notifiedAt), CSV.text(a.notifyError ?? ""),
                ], to: &out)
        }
        return out
    }
}
