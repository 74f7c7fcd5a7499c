import GRDB
import Report
import TallyCore
import UsageLog

/// What the ledger remembers of a month's reports: the last one written and the first final one, so that calls that
/// arrive after a month closed are found and shown as late.
package struct ReportSnapshot: Sendable {
    package var final: Bool
    package var requests: Int64
    /// The cost of the last report written.
    package var cost: Money
    package var finalRequests: Int64?
    package var finalCost: Money?
    package var lateFoundAt: Int64?
}

extension Ledger {
    /// The first local day with calls, if any.
    package func firstDay() throws(AuditError) -> Int? {
        try access { db in try Int.fetchOne(db, sql: "SELECT MIN(day) FROM rollup_daily") }
    }

    /// Requests and cost of local days `fromDay...toDay`, from the rollups.
    package func totals(fromDay: Int, toDay: Int) throws(AuditError) -> (requests: Int64, cost: Money) {
        try access { db in
            let r = try Row.fetchOne(
                db,
                sql: """
                    SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(cost_hi), 0), COALESCE(SUM(cost_lo / 1000000), 0), COALESCE(SUM(cost_lo % 1000000), 0)
                    FROM rollup_daily WHERE day BETWEEN ? AND ?
                    """, arguments: [fromDay, toDay])!
            return (r[0], Ledger.summedCost(r, at: 1))
        }
    }

    /// The cost of local days `fromDay...toDay`, and of those up to `throughDay`; nil when the days hold no rollups.
    package func cost(fromDay: Int, toDay: Int, throughDay: Int) throws(AuditError) -> (total: Money, throughDay: Money)? {
        try access { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*),
                        SUM(cost_hi), SUM(cost_lo / 1000000), SUM(cost_lo % 1000000),
                        SUM(CASE WHEN day <= ? THEN cost_hi ELSE 0 END), SUM(CASE WHEN day <= ? THEN cost_lo / 1000000 ELSE 0 END),
                        SUM(CASE WHEN day <= ? THEN cost_lo % 1000000 ELSE 0 END)
                    FROM rollup_daily WHERE day BETWEEN ? AND ?
                    """, arguments: [throughDay, throughDay, throughDay, fromDay, toDay])
            guard let row, (row[0] as Int64) > 0 else { return nil }
            return (Ledger.summedCost(row, at: 1), Ledger.summedCost(row, at: 4))
        }
    }

    /// Every month's report snapshot, by month label.
    package func reportSnapshots() throws(AuditError) -> [String: ReportSnapshot] {
        try access { db in
            var snapshots: [String: ReportSnapshot] = [:]
            for r in try Row.fetchAll(
                db,
                sql: """
                    SELECT period, final, requests, final_requests, final_cost_hi, final_cost_lo, late_found_at, cost_hi, cost_lo
                    FROM report_snapshots
                    """)
            {
                snapshots[r[0]] = ReportSnapshot(
                    final: r[1], requests: r[2], cost: Ledger.cost(hi: r[7], lo: r[8]), finalRequests: r[3],
                    finalCost: (r[4] as Int64?).map { Ledger.cost(hi: $0, lo: r[5]) },
                    lateFoundAt: r[6])
            }
            return snapshots
        }
    }

    /// Records that `period`'s report was written at `at` with these totals; `firstFinal` also keeps them as the
    /// first final report's, and `lateFoundAt` when late calls were first seen.
    package func recordReport(
        period: String, final: Bool, at: Int64, requests: Int64, cost: Money, firstFinal: Bool,
        lateFoundAt: Int64?
    ) throws(AuditError) {
        let hi = Int64(cost.picos / Ledger.costSplit)
        let lo = Int64(cost.picos % Ledger.costSplit)
        try access { db in
            try db.execute(
                sql: """
                    INSERT INTO report_snapshots (period, final, written_at, requests, cost_hi, cost_lo) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (period) DO UPDATE SET final = excluded.final, written_at = excluded.written_at,
                        requests = excluded.requests, cost_hi = excluded.cost_hi, cost_lo = excluded.cost_lo
                    """, arguments: [period, final, at, requests, hi, lo])
            if firstFinal {
                try db.execute(
                    sql: """
                        UPDATE report_snapshots SET final_at = ?, final_requests = ?, final_cost_hi = ?, final_cost_lo = ? WHERE period = ?
                        """, arguments: [at, requests, hi, lo, period])
            } else if let lateFoundAt {
                try db.execute(sql: "UPDATE report_snapshots SET late_found_at = ? WHERE period = ?", arguments: [lateFoundAt, period])
            }
        }
    }

    // MARK: A month's lists

    /// Alerts that crossed in `start..<end`, in the order they crossed.
    package func alerts(from start: Int64, to end: Int64) throws(AuditError) -> [Alert] {
        try access { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT scope, scope_id, period, period_label, threshold, crossed_at, spend, budget_limit, notified_at, notify_error
                    FROM alerts WHERE crossed_at >= ? AND crossed_at < ? ORDER BY crossed_at, id
                    """, arguments: [start, end]
            ).compactMap { r in
                guard let scope = BudgetScope(rawValue: r[0]), let period = BudgetPeriod(rawValue: r[2]),
                    let threshold = try? Ratio(parsing: r[4] as String)
                else { return nil }
                return Alert(
                    scope: scope, id: r[1], period: period, periodLabel: r[3], threshold: threshold, crossedAt: r[5],
                    spend: Money(picos: Int128(r[6] as Int64)), limit: Money(picos: Int128(r[7] as Int64)), notifiedAt: r[8],
                    notifyError: r[9])
            }
        }
    }

    /// Journal rows of `kinds` made in `start..<end`, in order.
    package func journal(kinds: [String], from start: Int64, to end: Int64) throws(AuditError) -> [Journal.Entry] {
        try access { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, at, kind, subject, detail FROM journal
                    WHERE kind IN (\(kinds.map { _ in "?" }.joined(separator: ","))) AND at >= ? AND at < ? ORDER BY id
                    """, arguments: StatementArguments(kinds) + [start, end]
            ).map { r in
                Journal.Entry(id: r[0], at: r[1], kind: r[2], subject: r[3], detail: r[4])
            }
        }
    }

    /// The month's pool moves, then its standing proposals, then its approvals, as the reports list them.
    package func reallocationRows(period label: String) throws(AuditError) -> [ReallocationRow] {
        try access { db in
            var reallocation: [ReallocationRow] = []
            for r in try Row.fetchAll(
                db, sql: "SELECT team, user, kind, days, amount FROM pool_moves WHERE period = ? ORDER BY team, kind DESC, user",
                arguments: [label])
            {
                let kind: String = r[2]
                let user: String = r[1]
                reallocation.append(
                    ReallocationRow(
                        kind: kind, team: r[0], from: kind == "release" ? user : "pool", to: kind == "release" ? "pool" : user,
                        amount: Money(picos: Int128(r[4] as Int64)), days: kind == "release" ? r[3] : nil))
            }
            for r in try Row.fetchAll(
                db,
                sql:
                    "SELECT id, team, from_user, to_user, amount, reason, proposed_at FROM realloc_proposals WHERE period = ? ORDER BY team, id",
                arguments: [label])
            {
                reallocation.append(
                    ReallocationRow(
                        kind: "proposal", id: r[0], team: r[1], from: r[2], to: r[3], amount: Money(picos: Int128(r[4] as Int64)),
                        at: r[6], reason: r[5]))
            }
            for r in try Row.fetchAll(
                db,
                sql: """
                    SELECT proposal, team, from_user, to_user, amount, approved_by, approved_at FROM realloc_approvals WHERE period = ? ORDER BY id
                    """, arguments: [label])
            {
                reallocation.append(
                    ReallocationRow(
                        kind: "approval", id: r[0], team: r[1], from: r[2], to: r[3], amount: Money(picos: Int128(r[4] as Int64)),
                        at: r[6], by: r[5]))
            }
            return reallocation
        }
    }

    /// Quarantined lines whose data is from `start..<end`: the line's own `ts` where it could be read, else its
    /// segment's opening time.
    package func quarantineRows(dataFrom start: Int64, to end: Int64) throws(AuditError) -> [QuarantineRow] {
        try access { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT r.started_at, s.path, q.line, q.kind, q.reason, q.length, COALESCE(q.ts, s.opened_at, r.started_at) AS data_ts
                    FROM quarantine q JOIN segments s ON s.id = q.segment JOIN runs r ON r.id = q.run
                    WHERE data_ts >= ? AND data_ts < ? ORDER BY q.run, s.path, q.line
                    """, arguments: [start, end]
            ).map { r in
                QuarantineRow(at: r[0], segment: r[1], line: r[2], kind: r[3], reason: r[4], length: r[5], ts: r[6])
            }
        }
    }

    /// Calls forwarded unmetered (outcome `unmetered`) in `start..<end`, by attribution and provider (dimension ids),
    /// with how many the provider answered with an error.
    package func unmeteredCalls(from start: Int64, to end: Int64) throws(AuditError) -> [UnmeteredCallsRow] {
        let stored = StoredEnums.outcomes.firstIndex(of: .unmetered)!
        return try access { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT attr, provider, COUNT(*), SUM(status >= 400) FROM events INDEXED BY events_unmetered
                    WHERE outcome = \(stored) AND ts >= ? AND ts < ? GROUP BY attr, provider
                    """, arguments: [start, end]
            ).map { UnmeteredCallsRow(attribution: $0[0], provider: $0[1], requests: $0[2], failed: $0[3]) }
        }
    }

    /// Damaged segments whose data is from `start..<end` (the time the segment was opened).
    package func damagedSegments(dataFrom start: Int64, to end: Int64) throws(AuditError) -> [DamagedSegment] {
        try access { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT s.path, s.damage FROM segments s JOIN runs r ON r.id = s.run
                    WHERE s.damage IS NOT NULL AND COALESCE(s.opened_at, r.started_at) >= ? AND COALESCE(s.opened_at, r.started_at) < ?
                    ORDER BY s.path
                    """, arguments: [start, end]
            ).map { DamagedSegment(path: $0[0], damage: $0[1]) }
        }
    }
}

/// Calls forwarded unmetered for one attribution and provider (dimension ids), in a period.
package struct UnmeteredCallsRow: Sendable, Equatable {
    package var attribution: Int64
    package var provider: Int64
    package var requests: Int64
    /// Of them, answered by the provider with an error status.
    package var failed: Int64
}
