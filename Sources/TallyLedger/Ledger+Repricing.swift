import Foundation
import GRDB
import TallyCore

/// One call with usage as re-pricing reads it: what priced it, and what it needs to be priced again.
package struct PricedEvent: Sendable {
    /// The event's key in `events` (16 bytes or text).
    package var id: DatabaseValue
    package var ts: Int64
    package var attr: Int64
    package var endUser: Int64
    package var tags: Int64
    package var outcome: Int
    package var tokens: TokenCounts
    package var serviceTier: Int64
    package var serviceTierName: String?
    package var notes: UInt8
    package var cost: Int64?
    package var price: Int64?
    package var estimate: Int64?
}

/// A call's new price, from re-pricing.
package struct Repriced: Sendable {
    package var event: PricedEvent
    /// Local day of the call in the audit's timezone (its rollup row).
    package var day: Int64
    package var cost: Int64?
    package var price: StoredPrice?
    package var notes: UInt8
    package var estimate: Int64?

    package init(event: PricedEvent, day: Int64, cost: Int64?, price: StoredPrice?, notes: UInt8, estimate: Int64?) {
        self.event = event
        self.day = day
        self.cost = cost
        self.price = price
        self.notes = notes
        self.estimate = estimate
    }
}

/// A price change on a month whose final report was written: what the month's report shows as corrected.
package struct PriceCorrection: Sendable, Equatable {
    package var period: String
    package var at: Int64
    package var calls: Int64
    /// New cost − old cost, exactly.
    package var change: Money
    package var detail: String

    package init(period: String, at: Int64, calls: Int64, change: Money, detail: String) {
        self.period = period
        self.at = at
        self.calls = calls
        self.change = change
        self.detail = detail
    }
}

extension Ledger {
    /// The fingerprint each provider × model was last priced with (`pricing_state`), by provider and model name.
    package func pricingStates() throws(AuditError) -> [String: String] {
        try access { db in
            var states: [String: String] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT p.value, m.value, s.fingerprint FROM pricing_state s JOIN dims p ON p.id = s.provider JOIN dims m ON m.id = s.model
                    """)
            {
                states[Self.pairKey(provider: row[0], model: row[1])] = row[2]
            }
            return states
        }
    }

    /// `provider\u{1F}model`.
    package static func pairKey(provider: String, model: String) -> String { provider + "\u{1F}" + model }

    /// Every provider × model pair with calls, by name and id.
    package func pricedPairs() throws(AuditError) -> [(provider: String, model: String, providerID: Int64, modelID: Int64)] {
        try access { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT p.value, m.value, r.provider, r.model FROM (SELECT DISTINCT provider, model FROM rollup_daily) r
                    JOIN dims p ON p.id = r.provider JOIN dims m ON m.id = r.model
                    """
            ).map { ($0[0], $0[1], $0[2], $0[3]) }
        }
    }

    /// The calls with usage of one provider × model.
    package func pricedEvents(providerID: Int64, modelID: Int64) throws(AuditError) -> [PricedEvent] {
        try access { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT e.id, e.ts, e.attr, COALESCE(e.end_user, 0), COALESCE(e.tags, 0), e.outcome, e.input, e.output,
                        e.cached_input, e.cache_write, e.reasoning, e.cache_write_1h, e.web_search_requests, COALESCE(e.service_tier, 0),
                        t.value, e.price_notes, e.cost, e.price, e.cost_estimate
                    FROM events e LEFT JOIN dims t ON t.id = e.service_tier
                    WHERE e.provider = ? AND e.model = ? AND e.input IS NOT NULL
                    """, arguments: [providerID, modelID])
            var events: [PricedEvent] = []
            while let r = try rows.next() {
                events.append(
                    PricedEvent(
                        id: r[0], ts: r[1], attr: r[2], endUser: r[3], tags: r[4], outcome: r[5],
                        tokens: TokenCounts(
                            input: r[6], output: r[7], cachedInput: r[8], cacheWrite: r[9], reasoning: r[10], cacheWrite1h: r[11] ?? 0,
                            webSearchRequests: r[12] ?? 0),
                        serviceTier: r[13], serviceTierName: r[14], notes: UInt8(truncatingIfNeeded: r[15] as Int64), cost: r[16],
                        price: r[17], estimate: r[18]))
            }
            return events
        }
    }
}

extension Ledger.Transaction {
    /// Records the fingerprint a provider × model is now priced with.
    package func setPricingState(providerID: Int64, modelID: Int64, fingerprint: String) throws {
        try db.execute(
            sql: """
                INSERT INTO pricing_state (provider, model, fingerprint) VALUES (?, ?, ?)
                ON CONFLICT (provider, model) DO UPDATE SET fingerprint = excluded.fingerprint
                """, arguments: [providerID, modelID, fingerprint])
    }

    /// Writes calls' new prices, moves their sums between rollup rows (a call that gains a price leaves the unpriced
    /// row), and drops rollup rows left empty. The scan blocks the waste rules read are rebuilt by `rebuildScanBlocks`.
    package func reprice(_ calls: [Repriced], providerID: Int64, modelID: Int64, currency: String) throws {
        var deltas: [RollupKey: RollupSums] = [:]
        var priceIDs: [StoredPrice: Int64] = [:]
        let update = try db.cachedStatement(sql: "UPDATE events SET cost = ?, price = ?, price_notes = ?, cost_estimate = ? WHERE id = ?")
        for call in calls {
            let e = call.event
            var priceID: Int64?
            if let price = call.price {
                if let known = priceIDs[price] {
                    priceID = known
                } else {
                    priceID = try self.priceID(price, currency: currency)
                    priceIDs[price] = priceID
                }
            }
            try update.execute(arguments: [call.cost, priceID, Int64(call.notes), call.estimate, e.id])
            // As the ingest groups them: a tier apart only where it is not the standard one.
            let rollupTier = e.serviceTierName.flatMap(ServiceTier.priceKey) != nil ? e.serviceTier : 0
            func key(priced: Bool, notes: UInt8) -> RollupKey {
                RollupKey(
                    day: call.day, attr: e.attr, provider: providerID, model: modelID, endUser: e.endUser, tags: e.tags, priced: priced,
                    serviceTier: rollupTier, notes: Int64(notes))
            }
            var old = RollupSums()
            old.add(outcome: e.outcome, tokens: e.tokens, cost: e.cost ?? 0, estimate: e.estimate ?? 0)
            var new = RollupSums()
            new.add(outcome: e.outcome, tokens: e.tokens, cost: call.cost ?? 0, estimate: call.estimate ?? 0)
            deltas[key(priced: e.cost != nil, notes: e.notes), default: RollupSums()].merge(old.negated)
            deltas[key(priced: call.cost != nil, notes: call.notes), default: RollupSums()].merge(new)
        }
        try Rollups.add(deltas, db)
        try db.execute(
            sql: """
                DELETE FROM rollup_daily WHERE requests = 0;
                DELETE FROM rollup_daily_detail WHERE requests = 0;
                DELETE FROM rollup_daily_pricing WHERE requests = 0;
                """)
    }

    /// Rebuilds the waste scan's blocks from `events`, after calls' costs changed.
    package func rebuildScanBlocks() throws {
        try db.execute(sql: "DELETE FROM scan_blocks")
        try ScanBlocks.backfill(db)
    }

    /// Records a correction to a closed month.
    package func record(_ correction: PriceCorrection) throws {
        try db.execute(
            sql: "INSERT INTO price_corrections (period, at, calls, change, detail) VALUES (?, ?, ?, ?, ?)",
            arguments: [correction.period, correction.at, correction.calls, correction.change.description, correction.detail])
    }

    /// The id of a `prices` row equal to `p`, inserted when there is none.
    func priceID(_ p: StoredPrice, currency: String) throws -> Int64 {
        if let id = try Int64.fetchOne(
            db,
            sql: """
                SELECT id FROM prices WHERE source = ? AND model = ? AND from_ms IS ? AND input = ? AND output = ?
                    AND cached_input IS ? AND cache_write IS ? AND reasoning IS ? AND dimensions IS ? AND currency = ?
                """,
            arguments: [
                p.source, p.model, p.from, p.input.perMillion, p.output.perMillion, p.cachedInput?.perMillion, p.cacheWrite?.perMillion,
                p.reasoning?.perMillion, p.dimensions, currency,
            ])
        {
            return id
        }
        try db.execute(
            sql: """
                INSERT INTO prices (source, model, from_ms, currency, input, output, cached_input, cache_write, reasoning, dimensions)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                p.source, p.model, p.from, currency, p.input.perMillion, p.output.perMillion, p.cachedInput?.perMillion,
                p.cacheWrite?.perMillion, p.reasoning?.perMillion, p.dimensions,
            ])
        return db.lastInsertedRowID
    }
}

extension Ledger {
    /// Corrections recorded for `period`, oldest first.
    package func priceCorrections(period: String) throws(AuditError) -> [PriceCorrection] {
        try access { db in
            try Row.fetchAll(
                db, sql: "SELECT period, at, calls, change, detail FROM price_corrections WHERE period = ? ORDER BY id", arguments: [period]
            ).compactMap { r in
                guard let change = try? Money(parsing: r[3] as String) else { return nil }
                return PriceCorrection(period: r[0], at: r[1], calls: r[2], change: change, detail: r[4])
            }
        }
    }
}

extension RollupSums {
    /// The same sums with the opposite sign, to take a call out of a row.
    var negated: RollupSums {
        var n = RollupSums()
        n.requests = -requests
        n.failed = -failed
        n.rejected = -rejected
        n.tokens -= tokens
        n.cost = -cost
        n.estimate = -estimate
        return n
    }
}
