import GRDB
import GRDBSQLite
import TallyCore
import UsageLog

/// The grouping of `rollup_daily_detail` (and, with `endUser` and `tags` 0, of `rollup_daily`).
package struct RollupKey: Hashable {
    package var day: Int64
    package var attr: Int64
    package var provider: Int64
    package var model: Int64
    /// 0 when the call named no end user.
    package var endUser: Int64
    /// 0 when the call had no tags.
    package var tags: Int64
    /// False for calls with usage but no price.
    package var priced: Bool
}

/// Sums over the calls of one rollup row; cost in pico-units.
package struct RollupSums {
    package init() {}

    package var requests: Int64 = 0
    package var failed: Int64 = 0
    package var rejected: Int64 = 0
    package var tokens = TokenCounts()
    package var cost: Int128 = 0

    /// Adds one call; `outcome` is its stored number (`StoredEnums.outcomes`). Upstream errors and client aborts count
    /// as failed, refusals by the collector as rejected.
    package mutating func add(outcome storedOutcome: Int, tokens: TokenCounts, cost: Int64) {
        let outcome = StoredEnums.outcomeClass(storedOutcome)
        requests += 1
        if outcome == .failed { failed += 1 }
        if outcome == .rejected { rejected += 1 }
        self.tokens += tokens
        self.cost += Int128(cost)
    }
}

enum Rollups {
    /// Adds `sums` to `rollup_daily_detail`, and folded over end users and tags to `rollup_daily`, carrying cost
    /// between `cost_lo` (below 10^18 pico-units) and `cost_hi`.
    static func add(_ sums: [RollupKey: RollupSums], _ db: Database) throws {
        var coarse: [RollupKey: RollupSums] = [:]
        for (key, sum) in sums {
            var folded = key
            folded.endUser = 0
            folded.tags = 0
            coarse[folded, default: RollupSums()].merge(sum)
        }
        try upsert(sums, detail: true, db)
        try upsert(coarse, detail: false, db)
    }

    private static func upsert(_ sums: [RollupKey: RollupSums], detail: Bool, _ db: Database) throws {
        let keyColumns = detail ? "day, attr, provider, model, end_user, tags, priced" : "day, attr, provider, model, priced"
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO \(detail ? "rollup_daily_detail" : "rollup_daily") (\(keyColumns), requests, failed, rejected,
                    input, output, cached_input, cache_write, reasoning, cost_hi, cost_lo)
                VALUES (\(Array(repeating: "?", count: detail ? 17 : 15).joined(separator: ", ")))
                ON CONFLICT (\(keyColumns)) DO UPDATE SET
                    requests = requests + excluded.requests,
                    failed = failed + excluded.failed,
                    rejected = rejected + excluded.rejected,
                    input = input + excluded.input,
                    output = output + excluded.output,
                    cached_input = cached_input + excluded.cached_input,
                    cache_write = cache_write + excluded.cache_write,
                    reasoning = reasoning + excluded.reasoning,
                    cost_hi = cost_hi + excluded.cost_hi + (cost_lo + excluded.cost_lo) / 1000000000000000000,
                    cost_lo = (cost_lo + excluded.cost_lo) % 1000000000000000000
                """)
        // Raw binds: a batch holds up to a few hundred thousand groups, and GRDB's argument arrays cost more than SQLite.
        let raw = statement.sqliteStatement
        for (key, sum) in sums {
            let keys: [Int64] =
                detail
                ? [key.day, key.attr, key.provider, key.model, key.endUser, key.tags, key.priced ? 1 : 0]
                : [key.day, key.attr, key.provider, key.model, key.priced ? 1 : 0]
            let values: [Int64] =
                keys + [
                    sum.requests, sum.failed, sum.rejected, sum.tokens.input, sum.tokens.output, sum.tokens.cachedInput,
                    sum.tokens.cacheWrite,
                    sum.tokens.reasoning,
                    Int64(sum.cost / Ledger.costSplit), Int64(sum.cost % Ledger.costSplit),
                ]
            sqlite3_reset(raw)
            for (i, value) in values.enumerated() { sqlite3_bind_int64(raw, Int32(i + 1), value) }
            let rc = sqlite3_step(raw)
            guard rc == SQLITE_DONE else {
                let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
                sqlite3_reset(raw)
                throw AuditError(.io, "ledger rollups: \(message)")
            }
        }
        sqlite3_reset(raw)
    }

    /// Rebuilds both rollups from the events, for a ledger whose days were counted in another timezone.
    static func rebuild(day: (Int64) -> Int, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM rollup_daily; DELETE FROM rollup_daily_detail")
        var sums: [RollupKey: RollupSums] = [:]
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT ts, attr, provider, model, COALESCE(end_user, 0), COALESCE(tags, 0), outcome,
                    input, output, cached_input, cache_write, reasoning, cost
                FROM events
                """)
        while let row = try rows.next() {
            let hasUsage = row[7] as Int64? != nil
            let cost = row[12] as Int64?
            let key = RollupKey(
                day: Int64(day(row[0])), attr: row[1], provider: row[2], model: row[3],
                endUser: row[4], tags: row[5], priced: !(hasUsage && cost == nil))
            sums[key, default: RollupSums()].add(
                outcome: row[6],
                tokens: TokenCounts(
                    input: row[7] ?? 0, output: row[8] ?? 0, cachedInput: row[9] ?? 0, cacheWrite: row[10] ?? 0,
                    reasoning: row[11] ?? 0),
                cost: cost ?? 0)
            if sums.count >= 200_000 {
                try add(sums, db)
                sums.removeAll(keepingCapacity: true)
            }
        }
        try add(sums, db)
    }
}
