import TallyCore

/// `revocations.csv`: keys revoked and restored in the period, then those revoked when the report was made.
public struct RevocationsCSV: TextReportFile {
    public let name = "revocations.csv"

    public init() {}

    public func render(_ report: PeriodReport) -> String {
        var out = ""
        CSV.append(["at", "key", "action", "reason", "until"], to: &out)
        for r in report.revocations {
            CSV.append([CSV.time(r.at), CSV.text(r.key), r.action, CSV.text(r.reason), CSV.time(r.until)], to: &out)
        }
        return out
    }
}
