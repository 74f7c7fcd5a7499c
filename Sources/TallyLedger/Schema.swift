import Foundation
import GRDB
import TallyCore
import UsageLog

/// The ledger's tables (`docs/ledger.md`). Migrations only ever add: a ledger written by an older Tally opens in a
/// newer one.
enum Schema {
    /// The sums both rollups carry; cost is `cost_hi × 10^18 + cost_lo` pico-units.
    private static let sumColumns = [
        "requests", "failed", "rejected", "input", "output", "cached_input", "cache_write", "reasoning", "cost_hi", "cost_lo",
    ].map { "\($0) INTEGER NOT NULL," }.joined(separator: "\n    ")

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE meta (
                        key TEXT PRIMARY KEY,
                        value TEXT NOT NULL
                    ) WITHOUT ROWID;

                    CREATE TABLE runs (
                        id INTEGER PRIMARY KEY,
                        started_at INTEGER NOT NULL,
                        as_of INTEGER NOT NULL,
                        finished_at INTEGER,
                        segments INTEGER NOT NULL DEFAULT 0,
                        events INTEGER NOT NULL DEFAULT 0,
                        duplicates INTEGER NOT NULL DEFAULT 0,
                        quarantined INTEGER NOT NULL DEFAULT 0,
                        unpriced INTEGER NOT NULL DEFAULT 0,
                        damaged INTEGER NOT NULL DEFAULT 0
                    );

                    CREATE TABLE segments (
                        id INTEGER PRIMARY KEY,
                        path TEXT NOT NULL UNIQUE,
                        collector TEXT NOT NULL,
                        stem TEXT NOT NULL,
                        closed INTEGER NOT NULL,
                        size INTEGER NOT NULL,
                        mtime INTEGER NOT NULL,
                        offset INTEGER NOT NULL,
                        lines INTEGER NOT NULL,
                        events INTEGER NOT NULL,
                        duplicates INTEGER NOT NULL,
                        quarantined INTEGER NOT NULL,
                        damage TEXT,
                        run INTEGER NOT NULL
                    );

                    CREATE TABLE dims (
                        id INTEGER PRIMARY KEY,
                        kind INTEGER NOT NULL,
                        value TEXT NOT NULL,
                        UNIQUE (kind, value)
                    );

                    CREATE TABLE attributions (
                        id INTEGER PRIMARY KEY,
                        key TEXT NOT NULL,
                        known INTEGER NOT NULL,
                        user TEXT NOT NULL,
                        project TEXT NOT NULL,
                        team TEXT NOT NULL,
                        org TEXT NOT NULL,
                        UNIQUE (key, known, user, project, team, org)
                    );

                    CREATE TABLE prices (
                        id INTEGER PRIMARY KEY,
                        source TEXT NOT NULL,
                        model TEXT NOT NULL,
                        from_ms INTEGER,
                        currency TEXT NOT NULL,
                        input TEXT NOT NULL,
                        output TEXT NOT NULL,
                        cached_input TEXT,
                        cache_write TEXT,
                        reasoning TEXT
                    );

                    CREATE TABLE events (
                        id BLOB NOT NULL PRIMARY KEY,
                        ts INTEGER NOT NULL,
                        attr INTEGER NOT NULL,
                        provider INTEGER NOT NULL,
                        model INTEGER NOT NULL,
                        collector INTEGER NOT NULL,
                        endpoint INTEGER NOT NULL,
                        status INTEGER NOT NULL,
                        outcome INTEGER NOT NULL,
                        stream INTEGER NOT NULL,
                        input INTEGER,
                        output INTEGER,
                        cached_input INTEGER,
                        cache_write INTEGER,
                        reasoning INTEGER,
                        cost INTEGER,
                        price INTEGER,
                        latency_ms INTEGER,
                        ttft_ms INTEGER,
                        prompt_hash INTEGER,
                        prompt_sim INTEGER,
                        prompt_chars INTEGER,
                        end_user INTEGER,
                        tags INTEGER,
                        error INTEGER,
                        segment INTEGER NOT NULL,
                        line INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX events_ts ON events (ts);

                    CREATE TABLE quarantine (
                        id INTEGER PRIMARY KEY,
                        segment INTEGER NOT NULL,
                        line INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        length INTEGER NOT NULL,
                        text BLOB NOT NULL,
                        run INTEGER NOT NULL,
                        UNIQUE (segment, line)
                    );

                    CREATE TABLE rollup_daily (
                        day INTEGER NOT NULL,
                        attr INTEGER NOT NULL,
                        provider INTEGER NOT NULL,
                        model INTEGER NOT NULL,
                        priced INTEGER NOT NULL,
                        \(sumColumns)
                        PRIMARY KEY (day, attr, provider, model, priced)
                    ) WITHOUT ROWID;

                    CREATE TABLE rollup_daily_detail (
                        day INTEGER NOT NULL,
                        attr INTEGER NOT NULL,
                        provider INTEGER NOT NULL,
                        model INTEGER NOT NULL,
                        end_user INTEGER NOT NULL,
                        tags INTEGER NOT NULL,
                        priced INTEGER NOT NULL,
                        \(sumColumns)
                        PRIMARY KEY (day, attr, provider, model, end_user, tags, priced)
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v2-key-decisions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE key_decisions (
                        id INTEGER PRIMARY KEY,
                        key TEXT NOT NULL,
                        action TEXT NOT NULL CHECK (action IN ('revoke', 'restore')),
                        reason TEXT NOT NULL,
                        until INTEGER,
                        at INTEGER NOT NULL,
                        by TEXT NOT NULL
                    );
                    CREATE INDEX key_decisions_key ON key_decisions (key, id);
                    """)
        }
        migrator.registerMigration("v3-alerts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE alerts (
                        id INTEGER PRIMARY KEY,
                        scope TEXT NOT NULL,
                        scope_id TEXT NOT NULL,
                        period TEXT NOT NULL,
                        period_label TEXT NOT NULL,
                        threshold TEXT NOT NULL,
                        crossed_at INTEGER NOT NULL,
                        spend INTEGER NOT NULL,
                        budget_limit INTEGER NOT NULL,
                        recorded_at INTEGER NOT NULL,
                        UNIQUE (scope, scope_id, period, period_label, threshold)
                    );
                    """)
        }
        migrator.registerMigration("v4-waste-reallocation-journal") { db in
            try db.execute(
                sql: """
                    CREATE TABLE waste (
                        period TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        model TEXT NOT NULL,
                        team TEXT NOT NULL,
                        keys TEXT NOT NULL,
                        users TEXT NOT NULL,
                        first_ts INTEGER NOT NULL,
                        last_ts INTEGER NOT NULL,
                        calls INTEGER NOT NULL,
                        repeats INTEGER NOT NULL,
                        errors INTEGER NOT NULL,
                        cost INTEGER NOT NULL,
                        counts_as_waste INTEGER NOT NULL,
                        detail TEXT NOT NULL
                    );
                    CREATE INDEX waste_period ON waste (period);

                    CREATE TABLE pool_moves (
                        period TEXT NOT NULL,
                        team TEXT NOT NULL,
                        user TEXT NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('release', 'draw')),
                        days INTEGER NOT NULL,
                        amount INTEGER NOT NULL,
                        PRIMARY KEY (period, team, user, kind)
                    ) WITHOUT ROWID;

                    CREATE TABLE realloc_proposals (
                        id TEXT PRIMARY KEY,
                        period TEXT NOT NULL,
                        team TEXT NOT NULL,
                        from_user TEXT NOT NULL,
                        to_user TEXT NOT NULL,
                        amount INTEGER NOT NULL,
                        reason TEXT NOT NULL,
                        proposed_at INTEGER NOT NULL
                    ) WITHOUT ROWID;

                    CREATE TABLE realloc_approvals (
                        id INTEGER PRIMARY KEY,
                        proposal TEXT NOT NULL,
                        period TEXT NOT NULL,
                        team TEXT NOT NULL,
                        from_user TEXT NOT NULL,
                        to_user TEXT NOT NULL,
                        amount INTEGER NOT NULL,
                        approved_by TEXT NOT NULL,
                        approved_at INTEGER NOT NULL
                    );

                    CREATE TABLE events_unordered (
                        ts INTEGER NOT NULL,
                        id BLOB NOT NULL,
                        PRIMARY KEY (ts, id)
                    ) WITHOUT ROWID;

                    CREATE TABLE journal (
                        id INTEGER PRIMARY KEY,
                        at INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        detail TEXT NOT NULL,
                        prev_hash BLOB NOT NULL,
                        hash BLOB NOT NULL
                    );
                    """)
            // Ledgers written before this list existed: find their calls whose id does not give their time.
            let inOrder = DatabaseFunction("tally_in_order", argumentCount: 2, pure: true) { values in
                guard let id = Data.fromDatabaseValue(values[0]), id.count == 16, let ts = Int64.fromDatabaseValue(values[1]) else {
                    return false
                }
                let high = id.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                return EventOrder.inOrder(idHigh: high, ts: ts)
            }
            db.add(function: inOrder)
            try db.execute(sql: "INSERT INTO events_unordered (ts, id) SELECT ts, id FROM events WHERE NOT tally_in_order(id, ts)")
            db.remove(function: inOrder)
        }
        migrator.registerMigration("v5-alert-delivery") { db in
            try db.execute(
                sql: """
                    ALTER TABLE alerts ADD COLUMN notified_at INTEGER;
                    ALTER TABLE alerts ADD COLUMN notify_attempts INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE alerts ADD COLUMN notify_error TEXT;
                    """)
        }
        migrator.registerMigration("v6-report-snapshots") { db in
            try db.execute(
                sql: """
                    CREATE TABLE report_snapshots (
                        period TEXT PRIMARY KEY,
                        final INTEGER NOT NULL,
                        written_at INTEGER NOT NULL,
                        requests INTEGER NOT NULL,
                        cost_hi INTEGER NOT NULL,
                        cost_lo INTEGER NOT NULL,
                        final_at INTEGER,
                        final_requests INTEGER,
                        final_cost_hi INTEGER,
                        final_cost_lo INTEGER,
                        late_found_at INTEGER
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v7-scan-blocks") { db in
            try db.execute(
                sql: """
                    CREATE TABLE scan_blocks (
                        id INTEGER PRIMARY KEY,
                        format INTEGER NOT NULL,
                        first_ts INTEGER NOT NULL,
                        last_ts INTEGER NOT NULL,
                        calls INTEGER NOT NULL,
                        data BLOB NOT NULL
                    );
                    CREATE INDEX scan_blocks_span ON scan_blocks (last_ts, first_ts);
                    """)
            // The calls of a ledger written before the blocks existed, once.
            try ScanBlocks.backfill(db)
        }
        migrator.registerMigration("v8-price-dimensions") { db in
            // What each call was priced by beyond its five token counts (`docs/pricing.md`), and the dimensions of a
            // price beyond its plain rates. Calls ingested before stay as they were: null counts, no notes.
            try db.execute(
                sql: """
                    ALTER TABLE events ADD COLUMN service_tier INTEGER;
                    ALTER TABLE events ADD COLUMN cache_write_1h INTEGER;
                    ALTER TABLE events ADD COLUMN web_search_requests INTEGER;
                    ALTER TABLE events ADD COLUMN price_notes INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE prices ADD COLUMN dimensions TEXT;

                    CREATE TABLE rollup_daily_pricing (
                        day INTEGER NOT NULL,
                        attr INTEGER NOT NULL,
                        provider INTEGER NOT NULL,
                        model INTEGER NOT NULL,
                        priced INTEGER NOT NULL,
                        service_tier INTEGER NOT NULL,
                        notes INTEGER NOT NULL,
                        \(sumColumns)
                        cache_write_1h INTEGER NOT NULL,
                        web_search_requests INTEGER NOT NULL,
                        PRIMARY KEY (day, attr, provider, model, priced, service_tier, notes)
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v9-data-quality-by-data-time") { db in
            // Quarantined lines and damaged segments are reported in the month their data is from: a line's own `ts`
            // where it can still be read, else its segment's opening time (from the segment's name).
            try db.execute(
                sql: """
                    ALTER TABLE segments ADD COLUMN opened_at INTEGER;
                    ALTER TABLE quarantine ADD COLUMN ts INTEGER;
                    """)
            let segments = try Row.fetchAll(db, sql: "SELECT id, collector, path FROM segments")
            for row in segments {
                let path: String = row[2]
                let name = path.split(separator: "/").last.map(String.init) ?? path
                guard let file = SegmentFile(path: path, collector: row[1], name: name) else { continue }
                try db.execute(sql: "UPDATE segments SET opened_at = ? WHERE id = ?", arguments: [file.openedAt * 1000, row[0] as Int64])
            }
            let lines = try Row.fetchAll(db, sql: "SELECT q.id, q.text, s.opened_at FROM quarantine q JOIN segments s ON s.id = q.segment")
            for row in lines {
                let text: Data = row[1]
                let ts = Array(text).withUnsafeBufferPointer { QuarantinedLine.dataTime($0) } ?? (row[2] as Int64?)
                try db.execute(sql: "UPDATE quarantine SET ts = ? WHERE id = ?", arguments: [ts, row[0] as Int64])
            }
        }
        migrator.registerMigration("v10-unpriced-estimates") { db in
            // Unpriced calls count toward budgets at a conservative estimate (`docs/pricing.md`), kept apart from cost.
            try db.execute(
                sql: """
                    ALTER TABLE events ADD COLUMN cost_estimate INTEGER;
                    ALTER TABLE rollup_daily ADD COLUMN estimate_hi INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE rollup_daily ADD COLUMN estimate_lo INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        migrator.registerMigration("v11-repricing") { db in
            // What each provider × model was last priced with, so that an audit finds the calls a new or changed price
            // affects; and the corrections that made to months already closed (`docs/pricing.md`).
            try db.execute(
                sql: """
                    CREATE TABLE pricing_state (
                        provider INTEGER NOT NULL,
                        model INTEGER NOT NULL,
                        fingerprint TEXT NOT NULL,
                        PRIMARY KEY (provider, model)
                    ) WITHOUT ROWID;
                    CREATE TABLE price_corrections (
                        id INTEGER PRIMARY KEY,
                        period TEXT NOT NULL,
                        at INTEGER NOT NULL,
                        calls INTEGER NOT NULL,
                        change TEXT NOT NULL,
                        detail TEXT NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v12-unmetered-calls") { db in
            // Calls the endpoint policy let through unmetered (outcome `unmetered`, stored as 6) are few: a partial
            // index finds a period's without scanning its events.
            try db.execute(sql: "CREATE INDEX events_unmetered ON events (ts) WHERE outcome = 6")
        }
        return migrator
    }
}

/// Whether an event's id gives its time: a UUIDv7 whose milliseconds are within `slack` of the event's timestamp. The
/// ledger keeps the others in `events_unordered`, so that reading `events` in key order is reading it in time order
/// give or take `slack` (as the scan blocks' backfill does).
package enum EventOrder {
    package static let slack: Int64 = 15 * 60_000

    package static func inOrder(idHigh: UInt64, ts: Int64) -> Bool {
        guard (idHigh >> 12) & 0xF == 7 else { return false }
        let idTime = Int64(idHigh >> 16)
        return idTime >= ts - slack && idTime <= ts + slack
    }
}

/// What a `dims` row names. The numbers are stored: never reuse one.
package enum DimensionKind: Int, CaseIterable, Sendable {
    case provider = 1
    case model = 2
    case collector = 3
    case endUser = 4
    case tags = 5
    case error = 6
    case serviceTier = 7
}

/// How the ledger stores `outcome` and `endpoint`: the position in these lists. Append only.
package enum StoredEnums {
    package static let outcomes: [UsageEvent.Outcome] = [
        .ok, .upstreamError, .clientAbort, .rejectedRevoked, .rejectedUnknownKey, .rejectedInvalid, .unmetered,
    ]

    /// How a call counts: answered, failed (an upstream error or a client abort: it reached the provider), or rejected
    /// (refused by the collector: it never did).
    package enum OutcomeClass { case ok, failed, rejected }

    /// The class of each stored outcome number; a number this Tally does not know counts as rejected.
    package static func outcomeClass(_ stored: Int) -> OutcomeClass {
        stored >= 0 && stored < outcomeClasses.count ? outcomeClasses[stored] : .rejected
    }

    private static let outcomeClasses: [OutcomeClass] = outcomes.map { outcome in
        switch outcome {
        case .ok, .unmetered: .ok
        case .upstreamError, .clientAbort: .failed
        case .rejectedRevoked, .rejectedUnknownKey, .rejectedInvalid: .rejected
        }
    }
    package static let endpoints: [UsageEvent.Endpoint] = [
        .chatCompletions, .completions, .responses, .embeddings, .messages, .other, .generateContent,
    ]
}
