import GRDB
import TallyCore

/// The columns a read of the daily rollups groups by (besides `priced`, always).
package struct RollupGrouping: OptionSet, Sendable {
    package let rawValue: Int
    package init(rawValue: Int) { self.rawValue = rawValue }

    package static let day = RollupGrouping(rawValue: 1)
    package static let attribution = RollupGrouping(rawValue: 2)
    package static let provider = RollupGrouping(rawValue: 4)
    package static let model = RollupGrouping(rawValue: 8)
    /// End users and tags need the detailed rollup; everything else reads the far smaller one.
    package static let endUser = RollupGrouping(rawValue: 16)
    package static let tags = RollupGrouping(rawValue: 32)
}

/// One group of the daily rollups: the ids it is grouped by (0 for a column not grouped by) and its sums.
package struct RollupRow: Sendable {
    package var day = 0
    package var attribution: Int64 = 0
    package var provider: Int64 = 0
    package var model: Int64 = 0
    /// 0 when the calls named no end user, or when not grouped by it.
    package var endUser: Int64 = 0
    /// 0 when the calls had no tags, or when not grouped by them.
    package var tags: Int64 = 0
    package var priced = true
    package var requests: Int64 = 0
    package var failed: Int64 = 0
    package var rejected: Int64 = 0
    package var tokens = TokenCounts()
    package var cost = Money.zero
}

/// What the ledger's ids stand for: attributions by id, and the strings of `dims` by id.
package struct LedgerNames: Sendable {
    package var attributions: [Int64: Attribution]
    package var dims: [Int64: String]
}

extension Ledger {
    /// Every attribution and dimension string, by id.
    package func names() throws(AuditError) -> LedgerNames {
        let attributions = try attributions()
        return try access { db in
            let dims = try Dictionary(
                uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT id, value FROM dims").map { ($0[0] as Int64, $0[1] as String) })
            return LedgerNames(attributions: attributions, dims: dims)
        }
    }

    /// Every attribution, by id.
    package func attributions() throws(AuditError) -> [Int64: Attribution] {
        try access { db in
            try Dictionary(
                uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT id, key, known, user, project, team, org FROM attributions").map {
                    ($0[0] as Int64, Attribution(key: $0[1], known: $0[2], user: $0[3], project: $0[4], team: $0[5], org: $0[6]))
                })
        }
    }

    /// The daily rollups of local days `fromDay...toDay`, summed by `grouping` and whether the calls were priced.
    package func rollups(grouping: RollupGrouping, fromDay: Int, toDay: Int, _ body: (RollupRow) throws -> Void) throws(AuditError) {
        var columns: [String] = []
        if grouping.contains(.day) { columns.append("r.day") }
        if grouping.contains(.attribution) { columns.append("r.attr") }
        if grouping.contains(.provider) { columns.append("r.provider") }
        if grouping.contains(.model) { columns.append("r.model") }
        if grouping.contains(.endUser) { columns.append("r.end_user") }
        if grouping.contains(.tags) { columns.append("r.tags") }
        let groupColumns = columns + ["r.priced"]
        let table = grouping.contains(.endUser) || grouping.contains(.tags) ? "rollup_daily_detail" : "rollup_daily"
        // Grouped by the whole key of `rollup_daily`, each row is its own group: read them as they are.
        let sql =
            table == "rollup_daily" && grouping == [.day, .attribution, .provider, .model]
            ? """
            SELECT \(groupColumns.joined(separator: ", ")),
                r.requests, r.failed, r.rejected, r.input, r.output, r.cached_input,
                r.cache_write, r.reasoning, r.cost_hi, r.cost_lo / 1000000, r.cost_lo % 1000000
            FROM rollup_daily r
            WHERE r.day BETWEEN ? AND ?
            """
            : """
            SELECT \(groupColumns.joined(separator: ", ")),
                SUM(r.requests), SUM(r.failed), SUM(r.rejected), SUM(r.input), SUM(r.output), SUM(r.cached_input),
                SUM(r.cache_write), SUM(r.reasoning), SUM(r.cost_hi), SUM(r.cost_lo / 1000000), SUM(r.cost_lo % 1000000)
            FROM \(table) r
            WHERE r.day BETWEEN ? AND ?
            GROUP BY \(groupColumns.joined(separator: ", "))
            """
        try access { db in
            let rows = try Row.fetchCursor(db, sql: sql, arguments: [fromDay, toDay])
            while let row = try rows.next() {
                var i = 0
                func next() -> Int64 {
                    defer { i += 1 }
                    return row[i]
                }
                var r = RollupRow()
                if grouping.contains(.day) { r.day = Int(next()) }
                if grouping.contains(.attribution) { r.attribution = next() }
                if grouping.contains(.provider) { r.provider = next() }
                if grouping.contains(.model) { r.model = next() }
                if grouping.contains(.endUser) { r.endUser = next() }
                if grouping.contains(.tags) { r.tags = next() }
                r.priced = next() != 0
                r.requests = next()
                r.failed = next()
                r.rejected = next()
                r.tokens.input = next()
                r.tokens.output = next()
                r.tokens.cachedInput = next()
                r.tokens.cacheWrite = next()
                r.tokens.reasoning = next()
                r.cost = Ledger.summedCost(row, at: i)
                try body(r)
            }
        }
    }

    /// The unpriced calls of local days `fromDay...toDay` by provider and model id (no cost: they have none).
    package func unpricedRollups(fromDay: Int, toDay: Int) throws(AuditError) -> [RollupRow] {
        try access { db in
            var result: [RollupRow] = []
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT provider, model, SUM(requests), SUM(input), SUM(output), SUM(cached_input),
                        SUM(cache_write), SUM(reasoning)
                    FROM rollup_daily WHERE priced = 0 AND day BETWEEN ? AND ? GROUP BY provider, model
                    """, arguments: [fromDay, toDay])
            while let row = try rows.next() {
                result.append(
                    RollupRow(
                        provider: row[0], model: row[1], priced: false, requests: row[2],
                        tokens: TokenCounts(
                            input: row[3], output: row[4], cachedInput: row[5], cacheWrite: row[6],
                            reasoning: row[7])))
            }
            return result
        }
    }
}

/// One group of `rollup_daily_pricing`: calls of one day, key, provider and model with a served tier or price notes.
package struct PricingRollupRow: Sendable {
    package var day = 0
    package var attribution: Int64 = 0
    package var provider: Int64 = 0
    package var model: Int64 = 0
    package var priced = true
    /// The served tier as reported; nil when none was.
    package var serviceTier: String?
    package var notes = PriceNotes()
    package var requests: Int64 = 0
    package var tokens = TokenCounts()
    package var cost = Money.zero
}

extension Ledger {
    /// The calls of local days `fromDay...toDay` that had a served tier or price notes, by day, attribution, provider,
    /// model, tier and notes (`rollup_daily_pricing`): the parts of `rollup_daily`'s rows that reports show apart.
    package func pricingRollups(fromDay: Int, toDay: Int) throws(AuditError) -> [PricingRollupRow] {
        try access { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT r.day, r.attr, r.provider, r.model, r.priced, t.value, r.notes, r.requests, r.input, r.output,
                        r.cached_input, r.cache_write, r.reasoning, r.cache_write_1h, r.web_search_requests,
                        r.cost_hi, r.cost_lo / 1000000, r.cost_lo % 1000000
                    FROM rollup_daily_pricing r LEFT JOIN dims t ON t.id = r.service_tier
                    WHERE r.day BETWEEN ? AND ?
                    ORDER BY r.day, r.attr, r.provider, r.model, r.priced, r.service_tier, r.notes
                    """, arguments: [fromDay, toDay])
            var result: [PricingRollupRow] = []
            while let row = try rows.next() {
                var r = PricingRollupRow()
                r.day = row[0]
                r.attribution = row[1]
                r.provider = row[2]
                r.model = row[3]
                r.priced = row[4] as Int64 != 0
                r.serviceTier = row[5]
                r.notes = PriceNotes(rawValue: UInt8(truncatingIfNeeded: row[6] as Int64))
                r.requests = row[7]
                r.tokens = TokenCounts(
                    input: row[8], output: row[9], cachedInput: row[10], cacheWrite: row[11], reasoning: row[12], cacheWrite1h: row[13],
                    webSearchRequests: row[14])
                r.cost = Ledger.summedCost(row, at: 15)
                result.append(r)
            }
            return result
        }
    }
}
