import TallyCore

/// `quarantine.csv`: log lines set aside whose data is from the period, whenever the audit that found them ran (their
/// text stays in the ledger).
public struct QuarantineCSV: TextReportFile {
    public let name = "quarantine.csv"

    public init() {}

    public func render(_ report: PeriodReport) -> String {
        var out = ""
        CSV.append(["found_at", "segment", "line", "kind", "reason", "length", "ts"], to: &out)
        for q in report.quarantine {
            CSV.append(
                [
                    CSV.time(q.at), CSV.text(q.segment), String(q.line), CSV.text(q.kind), CSV.text(q.reason), String(q.length),
                    CSV.time(q.ts),
                ], to: &out)
        }
        return out
    }
}
