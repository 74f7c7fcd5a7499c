import Report
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// What an audit wrote under `audit.reports_dir`.
public struct ReportPublication: Sendable {
    public struct Written: Sendable, Equatable {
        public var period: String
        public var folder: String
        public var isFinal: Bool
        public var late: LateEvents?
    }
    /// Periods written by this run: closed months first (final), then the current month.
    public var written: [Written]
    /// `<reports_dir>/latest`, which points at the current month's folder.
    public var latest: String
}

/// Writes the month's reports after each audit (`docs/reports.md`).
///
/// - The current month is rewritten every run into `<reports_dir>/<month>/`, and `latest` points at it.
/// - A month that has ended gets one last report, marked final (a period-close snapshot), with its waste scanned
///   over the whole month. Later runs leave it alone unless calls for that month arrive late; then it is written again,
///   still final, and lists them as late.
public enum ReportPublishing {
    public static let latestName = "latest"

    /// - Parameter folder: where to write instead of `audit.reports_dir` (`tally audit --out`).
    static func publish(ledger: Ledger, config: Config, asOf: Int64, folder: String? = nil) throws(AuditError) -> ReportPublication {
        var calendar = try LocalCalendar.audit(config)
        let folder = folder ?? config.resolve(config.audit.reportsDir)
        let current = Period.month(containing: calendar.day(of: asOf))
        var written: [ReportPublication.Written] = []

        // Closed months with calls whose final report is missing or out of date.
        let firstDay = try ledger.firstDay()
        let snapshots = try ledger.reportSnapshots()
        if let firstDay {
            var month = Period.month(containing: firstDay)
            while month.firstDay < current.firstDay {
                let (requests, cost) = try ledger.totals(fromDay: month.firstDay, toDay: month.lastDay)
                let snapshot = snapshots[month.label]
                // Written again when calls arrived late or were re-priced since (`Repricing`): still final, saying why.
                if requests > 0, snapshot?.final != true || snapshot?.requests != requests || snapshot?.cost != cost {
                    let corrections = try ledger.priceCorrections(period: month.label)
                    let corrected = corrections.reduce(Money.zero) { $0 + $1.change }
                    var late: LateEvents?
                    if let snapshot, snapshot.final, let finalRequests = snapshot.finalRequests, let finalCost = snapshot.finalCost,
                        requests != finalRequests
                    {
                        late = LateEvents(
                            requests: requests - finalRequests, cost: cost - finalCost - corrected, foundAt: snapshot.lateFoundAt ?? asOf)
                    }
                    // The whole month's waste, now that it has ended.
                    let end = calendar.start(ofDay: month.lastDay + 1)
                    _ = try WasteScan.run(
                        ledger: ledger, config: config, from: calendar.start(ofDay: month.firstDay), to: end - 1, label: month.label)
                    var report = try PeriodReportBuilder.build(
                        ledger: ledger, config: config, period: month, asOf: end - 1, isFinal: true, late: late)
                    if !corrections.isEmpty {
                        report.correction = PriceCorrectionNote(
                            calls: corrections.reduce(Int64(0)) { $0 + $1.calls }, change: corrected, at: corrections.last!.at,
                            details: corrections.map(\.detail))
                    }
                    let path = folder + "/" + month.label
                    try write(report, to: path)
                    try ledger.recordReport(
                        period: month.label, final: true, at: asOf, requests: requests, cost: cost,
                        firstFinal: snapshot?.final != true, lateFoundAt: late?.foundAt)
                    written.append(.init(period: month.label, folder: path, isFinal: true, late: late))
                }
                Audit.releaseFreedMemory()
                month = Period.month(containing: month.lastDay + 1)
            }
        }

        let report = try PeriodReportBuilder.build(ledger: ledger, config: config, period: current, asOf: asOf)
        let path = folder + "/" + current.label
        try write(report, to: path)
        // The report's rows are the month's rollups, so their sums are what `totals` would read again.
        let requests = report.attribution.reduce(Int64(0)) { $0 + $1.requests }
        try ledger.recordReport(
            period: current.label, final: false, at: asOf, requests: requests, cost: report.total, firstFinal: false,
            lateFoundAt: nil)
        written.append(.init(period: current.label, folder: path, isFinal: false, late: nil))
        let latest = folder + "/" + latestName
        do { try AtomicFile.link(latest, to: current.label) } catch {
            throw AuditError(.io, "cannot point \(latest) at \(current.label): \(error.message)", cause: error)
        }
        return ReportPublication(written: written, latest: latest)
    }

    /// Writes a report's files into `path`.
    public static func write(_ report: PeriodReport, to path: String) throws(AuditError) {
        do { try ReportFolder.write(report, to: path) } catch {
            // A failed system call is about the folder; anything else (the ledger) says what it is itself.
            throw AuditError(
                .io, "cannot write the reports in \(path): \(error.message)\(error.errno == nil ? "" : "; check audit.reports_dir")",
                cause: error)
        }
    }
}
