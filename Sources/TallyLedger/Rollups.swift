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
    /// `dims.id` of the served tier; 0 when none was reported or it is a name of the standard tier. Kept only by
    /// `rollup_daily_pricing`.
    package var serviceTier: Int64 = 0
    /// `PriceNotes` raw value. Kept only by `rollup_daily_pricing`.
    package var notes: Int64 = 0
}

/// The grouping of `rollup_daily_detail`, without what only the other rollups keep: a batch has many of these.
package struct DetailRollupKey: Hashable {
    package var day: Int64
    package var attr: Int64
    package var provider: Int64
    package var model: Int64
    package var endUser: Int64
    package var tags: Int64
    package var priced: Bool

    package init(_ key: RollupKey) {
        day = key.day
        attr = key.attr
        provider = key.provider
        model = key.model
        endUser = key.endUser
        tags = key.tags
        priced = key.priced
    }

    /// The key columns of `rollup_daily_detail`, in `Rollups.Table.detail.keyColumns` order.
    var columns: [Int64] { [day, attr, provider, model, endUser, tags, priced ? 1 : 0] }
}

/// The sums `rollup_daily_detail` keeps: no one-hour writes, searches or estimates (which `rollup_daily` and
/// `rollup_daily_pricing` keep), so that a batch's many detail groups stay small.
package struct DetailRollupSums {
    package var requests: Int64 = 0
    package var failed: Int64 = 0
    package var rejected: Int64 = 0
    package var input: Int64 = 0
    package var output: Int64 = 0
    package var cachedInput: Int64 = 0
    package var cacheWrite: Int64 = 0
    package var reasoning: Int64 = 0
    package var cost: Int128 = 0

    package init() {}

    package mutating func merge(_ s: RollupSums) {
        requests += s.requests
        failed += s.failed
        rejected += s.rejected
        input += s.tokens.input
        output += s.tokens.output
        cachedInput += s.tokens.cachedInput
        cacheWrite += s.tokens.cacheWrite
        reasoning += s.tokens.reasoning
        cost += s.cost
    }

    /// The sum columns of `rollup_daily_detail`, in `Rollups.Table.detail.sumColumns` order.
    var columns: [Int64] { [requests, failed, rejected, input, output, cachedInput, cacheWrite, reasoning] }
}

/// One batch's rollup sums, as `Rollups.add` writes them: the many detail groups lean, and the groups folded over end
/// users and tags (still by tier and notes) for `rollup_daily` and `rollup_daily_pricing`.
package struct RollupBatch {
    var detail: [DetailRollupKey: DetailRollupSums] = [:]
    var grouped: [RollupKey: RollupSums] = [:]

    package init() {}

    package mutating func add(_ key: RollupKey, _ sums: RollupSums) {
        detail[DetailRollupKey(key), default: DetailRollupSums()].merge(sums)
        var folded = key
        folded.endUser = 0
        folded.tags = 0
        grouped[folded, default: RollupSums()].merge(sums)
    }

    package mutating func removeAll() {
        detail.removeAll(keepingCapacity: true)
        grouped.removeAll(keepingCapacity: true)
    }
}

/// Sums over the calls of one rollup row; cost in pico-units.
package struct RollupSums {
    package init() {}

    package var requests: Int64 = 0
    package var failed: Int64 = 0
    package var rejected: Int64 = 0
    package var tokens = TokenCounts()
    package var cost: Int128 = 0
    /// Unpriced calls' estimates (what they count toward budgets); kept by `rollup_daily` only.
    package var estimate: Int128 = 0

    /// Adds one call; `outcome` is its stored number (`StoredEnums.outcomes`). Upstream errors and client aborts count
    /// as failed, refusals by the collector as rejected.
    package mutating func add(outcome storedOutcome: Int, tokens: TokenCounts, cost: Int64, estimate: Int64 = 0) {
        let outcome = StoredEnums.outcomeClass(storedOutcome)
        requests += 1
        if outcome == .failed { failed += 1 }
        if outcome == .rejected { rejected += 1 }
        self.tokens += tokens
        self.cost += Int128(cost)
        self.estimate += Int128(estimate)
    }
}

enum Rollups {
    /// Adds `sums` to `rollup_daily_detail`, and folded over end users and tags to `rollup_daily`, carrying cost
    /// between `cost_lo` (below 10^18 pico-units) and `cost_hi`. Calls with a served tier or price notes are also
    /// summed, by tier and notes, into `rollup_daily_pricing`.
    static func add(_ sums: [RollupKey: RollupSums], _ db: Database) throws {
        var batch = RollupBatch()
        for (key, sum) in sums { batch.add(key, sum) }
        try add(batch, db)
    }

    /// Adds a batch's sums: its detail groups to `rollup_daily_detail`; its folded groups to `rollup_daily`, and their
    /// tier and note groups to `rollup_daily_pricing`.
    static func add(_ batch: RollupBatch, _ db: Database) throws {
        var daily: [RollupKey: RollupSums] = [:]
        var pricing: [RollupKey: RollupSums] = [:]
        for (key, sum) in batch.grouped {
            var plain = key
            plain.serviceTier = 0
            plain.notes = 0
            daily[plain, default: RollupSums()].merge(sum)
            if key.serviceTier != 0 || key.notes != 0 { pricing[key, default: RollupSums()].merge(sum) }
        }
        try upsert(batch.detail.lazy.map { ($0.columns, $1.columns, $1.cost, Int128(0)) }, table: .detail, db)
        try upsert(daily.lazy.map { (Table.daily.keys($0), Table.daily.sums($1), $1.cost, $1.estimate) }, table: .daily, db)
        try upsert(pricing.lazy.map { (Table.pricing.keys($0), Table.pricing.sums($1), $1.cost, $1.estimate) }, table: .pricing, db)
    }

    enum Table {
        case daily, detail, pricing

        var name: String {
            switch self {
            case .daily: "rollup_daily"
            case .detail: "rollup_daily_detail"
            case .pricing: "rollup_daily_pricing"
            }
        }

        var keyColumns: [String] {
            switch self {
            case .daily: ["day", "attr", "provider", "model", "priced"]
            case .detail: ["day", "attr", "provider", "model", "end_user", "tags", "priced"]
            case .pricing: ["day", "attr", "provider", "model", "priced", "service_tier", "notes"]
            }
        }

        var sumColumns: [String] {
            let common = ["requests", "failed", "rejected", "input", "output", "cached_input", "cache_write", "reasoning"]
            return self == .pricing ? common + ["cache_write_1h", "web_search_requests"] : common
        }

        func keys(_ key: RollupKey) -> [Int64] {
            switch self {
            case .daily: [key.day, key.attr, key.provider, key.model, key.priced ? 1 : 0]
            case .detail: DetailRollupKey(key).columns
            case .pricing: [key.day, key.attr, key.provider, key.model, key.priced ? 1 : 0, key.serviceTier, key.notes]
            }
        }

        func sums(_ sum: RollupSums) -> [Int64] {
            let t = sum.tokens
            let common = [sum.requests, sum.failed, sum.rejected, t.input, t.output, t.cachedInput, t.cacheWrite, t.reasoning]
            return self == .pricing ? common + [t.cacheWrite1h, t.webSearchRequests] : common
        }
    }

    /// Upserts rows of (key columns, sum columns, cost, estimate) into `table`; the estimate only goes to `rollup_daily`.
    private static func upsert(
        _ rows: some Collection<([Int64], [Int64], Int128, Int128)>, table: Table, _ db: Database
    ) throws {
        guard !rows.isEmpty else { return }
        let keyColumns = table.keyColumns.joined(separator: ", ")
        let sumColumns = table.sumColumns
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO \(table.name) (\(keyColumns), \(sumColumns.joined(separator: ", ")), cost_hi, cost_lo\(table == .daily ? ", estimate_hi, estimate_lo" : ""))
                VALUES (\(Array(repeating: "?", count: table.keyColumns.count + sumColumns.count + (table == .daily ? 4 : 2)).joined(separator: ", ")))
                ON CONFLICT (\(keyColumns)) DO UPDATE SET
                    \(sumColumns.map { "\($0) = \($0) + excluded.\($0)" }.joined(separator: ",\n"))
                    ,
                    \(Self.carried("cost"))
                    \(table == .daily ? ", " + Self.carried("estimate") : "")
                """)
        // Raw binds: a batch holds up to a few hundred thousand groups, and GRDB's argument arrays cost more than SQLite.
        let raw = statement.sqliteStatement
        for (keys, sums, cost, estimate) in rows {
            sqlite3_reset(raw)
            var column: Int32 = 1
            for value in keys {
                sqlite3_bind_int64(raw, column, value)
                column += 1
            }
            for value in sums {
                sqlite3_bind_int64(raw, column, value)
                column += 1
            }
            var money = [Int64(cost / Ledger.costSplit), Int64(cost % Ledger.costSplit)]
            if table == .daily { money += [Int64(estimate / Ledger.costSplit), Int64(estimate % Ledger.costSplit)] }
            for value in money {
                sqlite3_bind_int64(raw, column, value)
                column += 1
            }
            let rc = sqlite3_step(raw)
            guard rc == SQLITE_DONE else {
                let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
                sqlite3_reset(raw)
                throw AuditError(.io, "ledger rollups: \(message)")
            }
        }
        sqlite3_reset(raw)
    }

    /// `x_hi` and `x_lo` of an upsert: adds the excluded row's amount, carrying between `x_lo` (below 10^18) and `x_hi`.
    private static func carried(_ x: String) -> String {
        """
        \(x)_hi = \(x)_hi + excluded.\(x)_hi + (\(x)_lo + excluded.\(x)_lo) / 1000000000000000000,
        \(x)_lo = (\(x)_lo + excluded.\(x)_lo) % 1000000000000000000
        """
    }

    /// Rebuilds the rollups from the events, for a ledger whose days were counted in another timezone.
    static func rebuild(day: (Int64) -> Int, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM rollup_daily; DELETE FROM rollup_daily_detail; DELETE FROM rollup_daily_pricing")
        var sums: [RollupKey: RollupSums] = [:]
        // Tiers are kept apart only where they are not the standard tier (as the ingest groups them).
        var standardTiers: Set<Int64> = [0]
        for row in try Row.fetchAll(db, sql: "SELECT id, value FROM dims WHERE kind = ?", arguments: [DimensionKind.serviceTier.rawValue])
        where ServiceTier.priceKey(row[1] as String) == nil {
            standardTiers.insert(row[0])
        }
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT ts, attr, provider, model, COALESCE(end_user, 0), COALESCE(tags, 0), outcome,
                    input, output, cached_input, cache_write, reasoning, cost, COALESCE(service_tier, 0), price_notes,
                    cache_write_1h, web_search_requests, cost_estimate
                FROM events
                """)
        while let row = try rows.next() {
            let hasUsage = row[7] as Int64? != nil
            let cost = row[12] as Int64?
            let key = RollupKey(
                day: Int64(day(row[0])), attr: row[1], provider: row[2], model: row[3],
                endUser: row[4], tags: row[5], priced: !(hasUsage && cost == nil),
                serviceTier: standardTiers.contains(row[13]) ? 0 : row[13], notes: row[14])
            sums[key, default: RollupSums()].add(
                outcome: row[6],
                tokens: TokenCounts(
                    input: row[7] ?? 0, output: row[8] ?? 0, cachedInput: row[9] ?? 0, cacheWrite: row[10] ?? 0,
                    reasoning: row[11] ?? 0, cacheWrite1h: row[15] ?? 0, webSearchRequests: row[16] ?? 0),
                cost: cost ?? 0, estimate: row[17] ?? 0)
            if sums.count >= 200_000 {
                try add(sums, db)
                sums.removeAll(keepingCapacity: true)
            }
        }
        try add(sums, db)
    }
}
