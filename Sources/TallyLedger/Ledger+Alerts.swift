import GRDB
import Report
import TallyCore

extension Ledger {
    /// Every recorded alert as `scope/id/period/label/threshold`, to tell a new crossing from one recorded before.
    package func alertSignatures() throws(AuditError) -> Set<String> {
        try access { db in
            try Set(
                String.fetchAll(
                    db, sql: "SELECT scope || '/' || scope_id || '/' || period || '/' || period_label || '/' || threshold FROM alerts"))
        }
    }

    /// Records a crossing once (a second record of the same crossing is ignored).
    package func record(_ alert: Alert, recordedAt: Int64) throws(AuditError) {
        try access { db in
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO alerts (scope, scope_id, period, period_label, threshold, crossed_at, spend, budget_limit, recorded_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    alert.scope.rawValue, alert.id, alert.period.rawValue, alert.periodLabel, alert.threshold.description,
                    alert.crossedAt, Int64(clamping: alert.spend.picos), Int64(clamping: alert.limit.picos), recordedAt,
                ])
        }
    }

    /// Alerts not yet posted to the webhook and tried fewer than `maxAttempts` times, oldest crossing first, with
    /// their row ids.
    package func undeliveredAlerts(maxAttempts: Int) throws(AuditError) -> [(id: Int64, alert: Alert)] {
        try access { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, scope, scope_id, period, period_label, threshold, crossed_at, spend, budget_limit FROM alerts
                    WHERE notified_at IS NULL AND notify_attempts < ? ORDER BY crossed_at, id
                    """, arguments: [maxAttempts]
            ).compactMap { row in
                guard let scope = BudgetScope(rawValue: row[1]), let period = BudgetPeriod(rawValue: row[3]),
                    let threshold = try? Ratio(parsing: row[5] as String)
                else { return nil }
                return (
                    row[0],
                    Alert(
                        scope: scope, id: row[2], period: period, periodLabel: row[4], threshold: threshold,
                        crossedAt: row[6], spend: Money(picos: Int128(row[7] as Int64)),
                        limit: Money(picos: Int128(row[8] as Int64)))
                )
            }
        }
    }

    /// The webhook took the alert.
    package func markAlertPosted(id: Int64, at: Int64) throws(AuditError) {
        try access { db in
            try db.execute(sql: "UPDATE alerts SET notified_at = ?, notify_error = NULL WHERE id = ?", arguments: [at, id])
        }
    }

    /// Posting the alert failed with `problem`; it is tried again by later runs, up to their limit.
    package func markAlertFailed(id: Int64, problem: String) throws(AuditError) {
        try access { db in
            try db.execute(
                sql: "UPDATE alerts SET notify_attempts = notify_attempts + 1, notify_error = ? WHERE id = ?", arguments: [problem, id])
        }
    }
}
