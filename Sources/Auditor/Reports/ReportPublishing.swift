import GRDB
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

    static func publish(ledger: Ledger, config: Config, asOf: Int64) throws(AuditError) -> ReportPublication {
        var calendar = try LocalCalendar.audit(config)
        let folder = config.resolve(config.audit.reportsDir)
        let current = Period.month(containing: calendar.day(of: asOf))
        var written: [ReportPublication.Written] = []

        // Closed months with calls whose final report is missing or out of date.
        let (firstDay, snapshots) = try ledger.access { db in
            let first = try Int.fetchOne(db, sql: "SELECT MIN(day) FROM rollup_daily")
            var snapshots: [String: Snapshot] = [:]
            for r in try Row.fetchAll(db, sql: """
                SELECT period, final, requests, final_requests, final_cost_hi, final_cost_lo, late_found_at FROM report_snapshots
                """) {
                snapshots[r[0]] = Snapshot(final: r[1], requests: r[2], finalRequests: r[3],
                                           finalCost: (r[4] as Int64?).map { Ledger.cost(hi: $0, lo: r[5]) },
                                           lateFoundAt: r[6])
            }
            return (first, snapshots)
        }
        if let firstDay {
            var month = Period.month(containing: firstDay)
            while month.firstDay < current.firstDay {
                let (requests, cost) = try totals(ledger: ledger, month)
                let snapshot = snapshots[month.label]
                if requests > 0, snapshot?.final != true || snapshot?.requests != requests {
                    var late: LateEvents?
                    if let snapshot, snapshot.final, let finalRequests = snapshot.finalRequests, let finalCost = snapshot.finalCost {
                        late = LateEvents(requests: requests - finalRequests, cost: cost - finalCost, foundAt: snapshot.lateFoundAt ?? asOf)
                    }
                    // The whole month's waste, now that it has ended.
                    let end = calendar.start(ofDay: month.lastDay + 1)
                    _ = try WasteScan.run(ledger: ledger, config: config, from: calendar.start(ofDay: month.firstDay), to: end - 1, label: month.label)
                    let report = try PeriodReportBuilder.build(ledger: ledger, config: config, period: month, asOf: end - 1, isFinal: true, late: late)
                    let path = folder + "/" + month.label
                    try write(report, to: path)
                    try record(ledger: ledger, period: month.label, final: true, at: asOf, requests: requests, cost: cost,
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
        try record(ledger: ledger, period: current.label, final: false, at: asOf, requests: requests, cost: report.total, firstFinal: false,
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
            throw AuditError(.io, "cannot write the reports in \(path): \(error.message)\(error.errno == nil ? "" : "; check audit.reports_dir")",
                             cause: error)
        }
    }

    struct Snapshot {
        var final: Bool
        var requests: Int64
        var finalRequests: Int64?
        var finalCost: Money?
        var lateFoundAt: Int64?
    }

    /// Requests and cost of a month, from the rollups.
    static func totals(ledger: Ledger, _ month: Period) throws(AuditError) -> (Int64, Money) {
        try ledger.access { db in
            let r = try Row.fetchOne(db, sql: """
                SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(cost_hi), 0), COALESCE(SUM(cost_lo / 1000000), 0), COALESCE(SUM(cost_lo % 1000000), 0)
                FROM rollup_daily WHERE day BETWEEN ? AND ?
                """, arguments: [month.firstDay, month.lastDay])!
            return (r[0], Ledger.summedCost(r, at: 1))
        }
    }

    private static func record(ledger: Ledger, period: String, final: Bool, at: Int64, requests: Int64, cost: Money, firstFinal: Bool,
                               lateFoundAt: Int64?) throws(AuditError) {
        let hi = Int64(cost.picos / Ledger.costSplit), lo = Int64(cost.picos % Ledger.costSplit)
        try ledger.access { db in
            try db.execute(sql: """
                INSERT INTO report_snapshots (period, final, written_at, requests, cost_hi, cost_lo) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (period) DO UPDATE SET final = excluded.final, written_at = excluded.written_at,
                    requests = excluded.requests, cost_hi = excluded.cost_hi, cost_lo = excluded.cost_lo
                """, arguments: [period, final, at, requests, hi, lo])
            if firstFinal {
                try db.execute(sql: """
                    UPDATE report_snapshots SET final_at = ?, final_requests = ?, final_cost_hi = ?, final_cost_lo = ? WHERE period = ?
                    """, arguments: [at, requests, hi, lo, period])
            } else if let lateFoundAt {
                try db.execute(sql: "UPDATE report_snapshots SET late_found_at = ? WHERE period = ?", arguments: [lateFoundAt, period])
            }
        }
    }
}
