import GRDB
import TallyConfig
import UsageLog

/// A budget crossing one of `audit.alert_thresholds` in a period, with the moment the ledger shows it happened.
public struct Alert: Sendable, Equatable {
    public var scope: BudgetScope
    public var id: String
    public var period: BudgetPeriod
    public var periodLabel: String
    public var threshold: Ratio
    /// The timestamp of the call that took spend to the threshold.
    public var crossedAt: Int64
    /// Spend just after that call.
    public var spend: Money
    public var limit: Money
}

/// Records each threshold crossing once per budget and period (`alerts` in the ledger) and returns the new ones.
public enum Alerts {
    public static func record(ledger: Ledger, config: Config, statuses: [BudgetStatus], asOf: Int64) throws(AuditError) -> [Alert] {
        guard var calendar = LocalCalendar(identifier: config.audit.timezone) else {
            throw AuditError(.config, "'\(config.audit.timezone)' is not an IANA timezone (audit.timezone)")
        }
        let thresholds = config.audit.alertThresholds.sorted()
        let crossed = statuses.filter { status in thresholds.contains { reached(status.spend, $0, status.limit) } }
        guard !crossed.isEmpty else { return [] }
        let today = calendar.day(of: asOf)
        let recorded = try ledger.access { db in
            try Set(String.fetchAll(db, sql: "SELECT scope || '/' || scope_id || '/' || period || '/' || period_label || '/' || threshold FROM alerts"))
        }
        let earliest = crossed.map(\.firstDay).min()!
        let perKeyDay = try BudgetEvaluation.spendByKeyAndDay(ledger: ledger, from: earliest, today: today, asOf: asOf, calendar: &calendar)
        let owners = Dictionary(uniqueKeysWithValues: config.keys.map { ($0.id, Attribution.resolving(key: $0.id, config: config)) })

        var alerts: [Alert] = []
        for status in crossed {
            let keys = owners.values.filter { BudgetEvaluation.counts($0, toward: status.scope, status.id) }.map(\.key)
            for threshold in thresholds where reached(status.spend, threshold, status.limit) {
                let signature = "\(status.scope.rawValue)/\(status.id)/\(status.budget.period.rawValue)/\(status.periodLabel)/\(threshold)"
                guard !recorded.contains(signature) else { continue }
                // The day it was crossed, from daily sums; then the call, from that day's events in time order.
                var before = Money.zero
                var crossingDay = min(status.lastDay, today)
                for day in status.firstDay...min(status.lastDay, today) {
                    let dayTotal = keys.reduce(Money.zero) { $0 + (perKeyDay[$1]?[day] ?? .zero) }
                    if reached(before + dayTotal, threshold, status.limit) {
                        crossingDay = day
                        break
                    }
                    before += dayTotal
                }
                let dayStart = calendar.start(ofDay: crossingDay)
                let dayEnd = min(calendar.start(ofDay: crossingDay + 1) - 1, asOf)
                let (at, spend) = try ledger.access { db -> (Int64, Money) in
                    var running = before
                    let rows = try Row.fetchCursor(db, sql: """
                        SELECT e.ts, e.cost FROM events e JOIN attributions a ON a.id = e.attr
                        WHERE e.ts BETWEEN ? AND ? AND e.cost IS NOT NULL AND a.key IN (\(keys.map { _ in "?" }.joined(separator: ",")))
                        ORDER BY e.ts
                        """, arguments: StatementArguments([dayStart, dayEnd] + keys.map { $0 as any DatabaseValueConvertible }))
                    while let row = try rows.next() {
                        running += Money(picos: Int128(row[1] as Int64))
                        if reached(running, threshold, status.limit) { return (row[0], running) }
                    }
                    return (dayEnd, running)
                }
                let alert = Alert(scope: status.scope, id: status.id, period: status.budget.period, periodLabel: status.periodLabel,
                                  threshold: threshold, crossedAt: at, spend: spend, limit: status.limit)
                try ledger.access { db in
                    try db.execute(sql: """
                        INSERT OR IGNORE INTO alerts (scope, scope_id, period, period_label, threshold, crossed_at, spend, budget_limit, recorded_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [alert.scope.rawValue, alert.id, alert.period.rawValue, alert.periodLabel, threshold.description,
                                         alert.crossedAt, Int64(clamping: alert.spend.picos), Int64(clamping: alert.limit.picos), Timestamp.now()])
                }
                alerts.append(alert)
            }
        }
        return alerts.sorted { ($0.crossedAt, $0.scope.rawValue, $0.id) < ($1.crossedAt, $1.scope.rawValue, $1.id) }
    }

    /// spend ≥ threshold × limit, exactly.
    static func reached(_ spend: Money, _ threshold: Ratio, _ limit: Money) -> Bool {
        spend.picos * Ratio.one.units >= limit.picos * threshold.units
    }

    /// `team search crossed 80% of its 5000.00 USD month budget for 2026-11 at 2026-11-20T10:03:00.000Z (4001.20 spent)`.
    public static func describe(_ alert: Alert, currency: String) -> String {
        "\(alert.scope.rawValue) \(alert.id) crossed \(alert.threshold.percent())% of its \(Enforcement.amount(alert.limit)) \(currency) "
            + "\(alert.period.rawValue) budget for \(alert.periodLabel) at \(Timestamp.format(milliseconds: alert.crossedAt)) "
            + "(\(Enforcement.amount(alert.spend)) spent)"
    }
}
