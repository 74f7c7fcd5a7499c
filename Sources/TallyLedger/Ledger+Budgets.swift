import GRDB
import TallyCore

extension Ledger {
    /// Spend by key id and local day: whole days `fromDay..<today` from the daily rollups, and today's calls up to
    /// `asOf` (today starting at `todayStart`) from the events, so that a budget sees every call to the minute. Spend
    /// includes unpriced calls' estimates (`docs/pricing.md`); `estimated` is that part of it.
    package func spendByKeyAndDay(
        fromDay: Int, today: Int, todayStart: Int64, asOf: Int64
    ) throws(AuditError) -> (spend: [String: [Int: Money]], estimated: [String: [Int: Money]]) {
        try access { db in
            var spend: [String: [Int: Money]] = [:]
            var estimated: [String: [Int: Money]] = [:]
            let days = try Row.fetchCursor(
                db,
                sql: """
                    SELECT a.key, r.day, SUM(r.cost_hi), SUM(r.cost_lo / 1000000), SUM(r.cost_lo % 1000000),
                        SUM(r.estimate_hi), SUM(r.estimate_lo / 1000000), SUM(r.estimate_lo % 1000000)
                    FROM rollup_daily r JOIN attributions a ON a.id = r.attr
                    WHERE r.day >= ? AND r.day < ? GROUP BY a.key, r.day
                    """, arguments: [fromDay, today])
            while let row = try days.next() {
                let estimate = Ledger.summedCost(row, at: 5)
                spend[row[0], default: [:]][row[1], default: .zero] += Ledger.summedCost(row, at: 2) + estimate
                if estimate != .zero { estimated[row[0], default: [:]][row[1], default: .zero] += estimate }
            }
            let calls = try Row.fetchCursor(
                db,
                sql: """
                    SELECT a.key, e.cost, e.cost_estimate FROM events e JOIN attributions a ON a.id = e.attr
                    WHERE e.ts >= ? AND e.ts <= ? AND (e.cost IS NOT NULL OR e.cost_estimate IS NOT NULL)
                    """, arguments: [todayStart, asOf])
            while let row = try calls.next() {
                let cost = Money(picos: Int128((row[1] as Int64?) ?? 0))
                let estimate = Money(picos: Int128((row[2] as Int64?) ?? 0))
                spend[row[0], default: [:]][today, default: .zero] += cost + estimate
                if estimate != .zero { estimated[row[0], default: [:]][today, default: .zero] += estimate }
            }
            return (spend, estimated)
        }
    }

    /// The priced calls from `from` to `to` (both included) in time order, as (time, cost in pico-units, attribution
    /// id), from the scan blocks.
    package func pricedCalls(from: Int64, to: Int64) throws(AuditError) -> [(ts: Int64, cost: Int64, attr: Int64)] {
        try access { db in
            var calls: [(ts: Int64, cost: Int64, attr: Int64)] = []
            try ScanBlocks.forEach(db, from: from, to: to) { call in
                if call.flags & ScanCall.priced != 0 { calls.append((call.ts, call.cost, Int64(call.attr))) }
            }
            return calls
        }
    }

    // MARK: Key decisions

    /// Each key's latest decision.
    package func latestKeyDecisions() throws(AuditError) -> [String: KeyDecision] {
        try access { db in
            var result: [String: KeyDecision] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT key, action, reason, until, at, by FROM key_decisions ORDER BY id")
            while let row = try rows.next() {
                guard let action = KeyDecision.Action(rawValue: row[1]) else { continue }
                result[row[0]] = KeyDecision(key: row[0], action: action, reason: row[2], until: row[3], at: row[4], by: row[5])
            }
            return result
        }
    }
}

extension Ledger.Transaction {
    package func record(_ decision: KeyDecision) throws {
        try db.execute(
            sql: "INSERT INTO key_decisions (key, action, reason, until, at, by) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [decision.key, decision.action.rawValue, decision.reason, decision.until, decision.at, decision.by])
    }
}
