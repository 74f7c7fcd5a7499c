import TallyCore

/// `reallocation.csv`: pool releases and draws, proposals and approvals.
public struct ReallocationCSV: TextReportFile {
    public let name = "reallocation.csv"

    public init() {}

    public func render(_ report: PeriodReport) -> String {
        var out = ""
        CSV.append(["kind", "id", "team", "from", "to", "amount", "currency", "days_away", "at", "by", "reason"], to: &out)
        for r in report.reallocation {
            CSV.append(
                [
                    r.kind, CSV.text(r.id), CSV.text(r.team), CSV.text(r.from), CSV.text(r.to), CSV.money(r.amount),
                    CSV.text(report.currency),
                    r.days.map(String.init) ?? "", CSV.time(r.at), CSV.text(r.by), CSV.text(r.reason),
                ], to: &out)
        }
        return out
    }
}
