import Report
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// Records each threshold crossing once per budget and period (`alerts` in the ledger) and returns the new ones.
public enum Alerts {
    public static func record(ledger: Ledger, config: Config, enforcement: EnforcementResult, asOf: Int64) throws(AuditError) -> [Alert] {
        var calendar = try LocalCalendar.audit(config)
        let thresholds = config.audit.alertThresholds.sorted()
        let crossed = enforcement.statuses.filter { status in thresholds.contains { reached(status.spend, $0, status.limit) } }
        guard !crossed.isEmpty else { return [] }
        let today = calendar.day(of: asOf)
        let recorded = try ledger.alertSignatures()
        let perKeyDay = enforcement.spendByKeyAndDay
        let owners = Attribution.owners(config)

        // Each new crossing: the day it happened, from daily sums; then the call, from that day's events in time
        // order. Crossings on the same day share one pass over that day's events.
        struct Pending {
            var status: BudgetStatus
            var threshold: Ratio
            var running: Money
            var found: (at: Int64, spend: Money)?
        }
        var byDay: [Int: [Pending]] = [:]
        var keysOf: [String: Set<String>] = [:]
        for status in crossed {
            let keys = owners.values.filter { BudgetEvaluation.counts($0, toward: status.scope, status.id) }.map(\.key)
            keysOf[status.subject] = Set(keys)
            for threshold in thresholds where reached(status.spend, threshold, status.limit) {
                let signature = "\(status.scope.rawValue)/\(status.id)/\(status.budget.period.rawValue)/\(status.periodLabel)/\(threshold)"
                guard !recorded.contains(signature) else { continue }
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
                byDay[crossingDay, default: []].append(Pending(status: status, threshold: threshold, running: before))
            }
        }
        let attrKeys = try ledger.attributions().mapValues(\.key)
        var alerts: [Alert] = []
        for (day, var pending) in byDay.sorted(by: { $0.key < $1.key }) {
            let dayStart = calendar.start(ofDay: day)
            let dayEnd = min(calendar.start(ofDay: day + 1) - 1, asOf)
            var waiting: [String: [Int]] = [:]
            for (index, item) in pending.enumerated() {
                for key in keysOf[item.status.subject] ?? [] { waiting[key, default: []].append(index) }
            }
            // The day's priced calls in time order, from the waste scan's blocks.
            let calls = try ledger.pricedCalls(from: dayStart, to: dayEnd)
            // By attribution id, the crossings its calls count toward: one array lookup per call.
            var waitingByAttr = [[Int]](repeating: [], count: (attrKeys.keys.max().map { Int($0) } ?? -1) + 1)
            for (attr, key) in attrKeys where attr >= 0 { waitingByAttr[Int(attr)] = waiting[key] ?? [] }
            var open = pending.count
            for call in calls where open > 0 {
                guard call.attr >= 0, call.attr < waitingByAttr.count else { continue }
                let indices = waitingByAttr[Int(call.attr)]
                let cost = Money(picos: Int128(call.cost))
                for index in indices where pending[index].found == nil {
                    pending[index].running += cost
                    if reached(pending[index].running, pending[index].threshold, pending[index].status.limit) {
                        pending[index].found = (call.ts, pending[index].running)
                        open -= 1
                    }
                }
            }
            for item in pending {
                let (at, spend) = item.found ?? (dayEnd, item.running)
                let status = item.status
                let alert = Alert(
                    scope: status.scope, id: status.id, period: status.budget.period, periodLabel: status.periodLabel,
                    threshold: item.threshold, crossedAt: at, spend: spend, limit: status.limit)
                try ledger.record(alert, recordedAt: Timestamp.now())
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
        "\(alert.scope.rawValue) \(alert.id) crossed \(alert.threshold.percent())% of its \(alert.limit.brief) \(currency) "
            + "\(alert.period.rawValue) budget for \(alert.periodLabel) at \(Timestamp.format(milliseconds: alert.crossedAt)) "
            + "(\(alert.spend.brief) spent)"
    }
}
