import Foundation
import GRDB
import GRDBSQLite
import TallyCore
import UsageLog

/// Counts of one run's ingest.
public struct IngestTotals: Sendable, Equatable {
    /// Segments read (wholly or from where an open one was left).
    public var segmentsRead = 0
    /// Segments left as they were: already ingested and unchanged.
    public var segmentsUnchanged = 0
    /// Open segments not read because `--include-open` was not given (or opened after `--as-of`).
    public var segmentsLeft = 0
    public var events = 0
    public var duplicates = 0
    public var quarantined = 0
    /// Calls with token usage whose model has no price: counted, listed, never silently zero.
    public var unpriced = 0
    /// Calls that failed without usage (free) or with usage (priced like any other).
    public var failed = 0
    /// Segments whose gzip data is cut short or corrupt: their complete lines were ingested.
    public var damaged: [String] = []
    /// Calls whose key the config does not list, by key id.
    public var unknownKeys: [String: Int] = [:]
    /// Unpriced calls by model.
    public var unpricedModels: [String: Int] = [:]

    public init() {}
}

/// Writes parsed segments into the ledger, one transaction per segment, and keeps the caches that turn strings into
/// dimension ids and prices into price ids.
package struct IngestWriter {
    /// The currency the prices are in, stored with each price row.
    package let currency: String
    package let runID: Int64
    package var totals = IngestTotals()

    private var dimensionIDs: [DimensionKind: [String: Int64]] = [:]
    private var attributionIDs: [Attribution: Int64] = [:]
    private var priceIDs: [StoredPrice: Int64] = [:]

    init(currency: String, runID: Int64, db: Database) throws {
        self.currency = currency
        self.runID = runID
        for kind in DimensionKind.allCases { dimensionIDs[kind] = [:] }
        let dims = try Row.fetchCursor(db, sql: "SELECT id, kind, value FROM dims")
        while let row = try dims.next() {
            if let kind = DimensionKind(rawValue: row[1]) { dimensionIDs[kind]![row[2] as String] = row[0] }
        }
        let attributions = try Row.fetchCursor(db, sql: "SELECT id, key, known, user, project, team, org FROM attributions")
        while let row = try attributions.next() {
            let attribution = Attribution(key: row[1], known: row[2], user: row[3], project: row[4], team: row[5], org: row[6])
            attributionIDs[attribution] = row[0]
        }
        let priceRows = try Row.fetchCursor(
            db, sql: "SELECT id, source, model, from_ms, input, output, cached_input, cache_write, reasoning, dimensions FROM prices")
        var stored: [String: Int64] = [:]
        while let row = try priceRows.next() {
            stored[
                Self.priceSignature(
                    source: row[1], model: row[2], from: row[3], input: row[4], output: row[5],
                    cachedInput: row[6], cacheWrite: row[7], reasoning: row[8], dimensions: row[9])] = row[0]
        }
        storedPrices = stored
    }

    private var storedPrices: [String: Int64]

    private static func priceSignature(
        source: String, model: String, from: Int64?, input: String, output: String,
        cachedInput: String?, cacheWrite: String?, reasoning: String?, dimensions: String?
    ) -> String {
        [
            source, model, from.map(String.init) ?? "-", input, output, cachedInput ?? "-", cacheWrite ?? "-", reasoning ?? "-",
            dimensions ?? "-",
        ]
        .joined(separator: "\u{1F}")
    }

    // MARK: Dimension ids

    private mutating func dimension(_ kind: DimensionKind, _ value: String, _ db: Database) throws -> Int64 {
        if let id = dimensionIDs[kind]![value] { return id }
        try db.execute(sql: "INSERT INTO dims (kind, value) VALUES (?, ?)", arguments: [kind.rawValue, value])
        let id = db.lastInsertedRowID
        dimensionIDs[kind]![value] = id
        return id
    }

    private mutating func attributionID(_ attribution: Attribution, _ db: Database) throws -> Int64 {
        if let existing = attributionIDs[attribution] { return existing }
        try db.execute(
            sql: "INSERT INTO attributions (key, known, user, project, team, org) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [attribution.key, attribution.known, attribution.user, attribution.project, attribution.team, attribution.org])
        let id = db.lastInsertedRowID
        attributionIDs[attribution] = id
        return id
    }

    private mutating func priceID(_ p: StoredPrice, _ db: Database) throws -> Int64 {
        if let id = priceIDs[p] { return id }
        let signature = Self.priceSignature(
            source: p.source, model: p.model, from: p.from, input: p.input.perMillion,
            output: p.output.perMillion, cachedInput: p.cachedInput?.perMillion,
            cacheWrite: p.cacheWrite?.perMillion, reasoning: p.reasoning?.perMillion, dimensions: p.dimensions)
        let id: Int64
        if let stored = storedPrices[signature] {
            id = stored
        } else {
            try db.execute(
                sql: """
                    INSERT INTO prices (source, model, from_ms, currency, input, output, cached_input, cache_write, reasoning, dimensions)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    p.source, p.model, p.from, currency, p.input.perMillion, p.output.perMillion,
                    p.cachedInput?.perMillion, p.cacheWrite?.perMillion, p.reasoning?.perMillion, p.dimensions,
                ])
            id = db.lastInsertedRowID
            storedPrices[signature] = id
        }
        priceIDs[p] = id
        return id
    }

    // MARK: Writing a segment

    /// Events written since the batch's transaction began; the ingest commits once this passes `batchEvents`.
    package private(set) var pendingEvents = 0
    private var inTransaction = false
    /// The open batch's rollup sums.
    private var pendingRollups = RollupBatch()
    /// Events per transaction: large enough that commits and rollup upserts are cheap, small enough that memory stays flat.
    package static let batchEvents = 250_000

    /// Adds one parsed segment and its bookkeeping to the open batch (opening one if needed). Nothing of it is
    /// visible, or durable, until `commit`: a run killed midway leaves no trace of its batch.
    /// A failure ends the run (the caches may then name rolled-back rows, so the writer must not be used again).
    mutating func write(_ parsed: ParsedSegment, _ db: Database) throws {
        if !inTransaction {
            try db.beginTransaction(.immediate)
            inTransaction = true
        }
        try writeInTransaction(parsed, db)
    }

    /// Writes the batch's rollup sums and commits it.
    mutating func commit(_ db: Database) throws {
        guard inTransaction else { return }
        try Rollups.add(pendingRollups, db)
        try db.commit()
        pendingRollups.removeAll()
        pendingEvents = 0
        inTransaction = false
    }

    private mutating func writeInTransaction(_ parsed: ParsedSegment, _ db: Database) throws {
        let job = parsed.job
        guard
            let segmentID = try Int64.fetchOne(
                db,
                sql: """
                    INSERT INTO segments (path, collector, stem, closed, size, mtime, offset, lines, events, duplicates, quarantined, damage, run,
                        opened_at)
                    VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0, NULL, ?, ?)
                    ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime, run = excluded.run
                    RETURNING id
                    """,
                arguments: [
                    job.relativePath, job.file.collector, job.file.stem, job.file.isClosed, job.size, job.mtime, runID,
                    job.file.openedAt * 1000,
                ])
        else { throw AuditError(.io, "the ledger did not return an id for segment \(job.relativePath)") }

        // Strings of this segment → dimension ids, looked up once per distinct string and kind.
        // One slot per (kind, string): kinds are 1...7, so slot = index × 8 + kind.
        var local = [Int64](repeating: -1, count: parsed.strings.strings.count * 8)
        func dim(_ kind: DimensionKind, _ index: Int32) throws -> Int64 {
            let slot = Int(index) &* 8 &+ kind.rawValue
            let cached = local[slot]
            if cached >= 0 { return cached }
            let id = try dimension(kind, parsed.strings[index], db)
            local[slot] = id
            return id
        }
        // Keys and prices were worked out by the parse task; here they only get their ledger ids.
        var owners = [(id: Int64, known: Bool)](repeating: (0, false), count: parsed.strings.strings.count)
        for (index, attribution) in parsed.attributions { owners[Int(index)] = (try attributionID(attribution, db), attribution.known) }
        var priceIDs: [Int64] = []
        for price in parsed.priceRows { priceIDs.append(try priceID(price, db)) }
        var rollups = parsed.rollups

        let connection = db.sqliteConnection
        let insert = try db.cachedStatement(
            sql: """
                INSERT OR IGNORE INTO events (id, ts, attr, provider, model, collector, endpoint, status, outcome, stream,
                    input, output, cached_input, cache_write, reasoning, cost, price, latency_ms, ttft_ms,
                    prompt_hash, prompt_sim, prompt_chars, end_user, tags, error, segment, line,
                    service_tier, cache_write_1h, web_search_requests, price_notes, cost_estimate)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).sqliteStatement
        let unordered = try db.cachedStatement(sql: "INSERT OR IGNORE INTO events_unordered (ts, id) VALUES (?, ?)").sqliteStatement

        var inserted = 0
        var duplicates = 0
        var scanCalls: [ScanCall] = []
        scanCalls.reserveCapacity(parsed.events.count)

        for event in parsed.events {
            let owner = owners[Int(event.key)]
            let provider = try dim(.provider, event.provider)
            let model = try dim(.model, event.model)
            let collector = try dim(.collector, event.collector)
            let endUser = event.endUser >= 0 ? try dim(.endUser, event.endUser) : 0
            let tags = event.tags >= 0 ? try dim(.tags, event.tags) : 0
            let error = event.error >= 0 ? try dim(.error, event.error) : 0
            let tier = event.serviceTier >= 0 ? try dim(.serviceTier, event.serviceTier) : 0
            let priced = event.priceRef >= 0
            let cost: Int64? = priced ? event.cost : nil
            let price: Int64? = priced ? priceIDs[Int(event.priceRef)] : nil

            sqlite3_reset(insert)
            if event.idText >= 0 {
                let text = parsed.strings[event.idText]
                _ = text.withCString { sqlite3_bind_text(insert, 1, $0, -1, SQLITE_TRANSIENT_VALUE) }
            } else {
                var bytes = (event.idHigh.bigEndian, event.idLow.bigEndian)
                _ = withUnsafeBytes(of: &bytes) { sqlite3_bind_blob(insert, 1, $0.baseAddress, 16, SQLITE_TRANSIENT_VALUE) }
            }
            sqlite3_bind_int64(insert, 2, event.timestamp)
            sqlite3_bind_int64(insert, 3, owner.id)
            sqlite3_bind_int64(insert, 4, provider)
            sqlite3_bind_int64(insert, 5, model)
            sqlite3_bind_int64(insert, 6, collector)
            sqlite3_bind_int64(insert, 7, Int64(event.endpoint))
            sqlite3_bind_int64(insert, 8, Int64(event.status))
            sqlite3_bind_int64(insert, 9, Int64(event.outcome))
            sqlite3_bind_int64(insert, 10, event.stream ? 1 : 0)
            if event.hasUsage {
                sqlite3_bind_int64(insert, 11, event.tokens.input)
                sqlite3_bind_int64(insert, 12, event.tokens.output)
                sqlite3_bind_int64(insert, 13, event.tokens.cachedInput)
                sqlite3_bind_int64(insert, 14, event.tokens.cacheWrite)
                sqlite3_bind_int64(insert, 15, event.tokens.reasoning)
            } else {
                for column in Int32(11)...15 { sqlite3_bind_null(insert, column) }
            }
            bind(insert, 16, cost)
            bind(insert, 17, price)
            bind(insert, 18, event.latencyMs)
            bind(insert, 19, event.ttftMs)
            bind(insert, 20, event.promptHash)
            bind(insert, 21, event.promptSim)
            bind(insert, 22, event.promptChars)
            bind(insert, 23, endUser == 0 ? nil : endUser)
            bind(insert, 24, tags == 0 ? nil : tags)
            bind(insert, 25, error == 0 ? nil : error)
            sqlite3_bind_int64(insert, 26, segmentID)
            sqlite3_bind_int64(insert, 27, Int64(event.line))
            bind(insert, 28, tier == 0 ? nil : tier)
            bind(insert, 29, event.hasUsage && event.tokens.cacheWrite1h != 0 ? event.tokens.cacheWrite1h : nil)
            bind(insert, 30, event.hasUsage && event.tokens.webSearchRequests != 0 ? event.tokens.webSearchRequests : nil)
            sqlite3_bind_int64(insert, 31, Int64(event.priceNotes))
            bind(insert, 32, !priced && event.estimate != 0 ? event.estimate : nil)
            let rc = sqlite3_step(insert)
            guard rc == SQLITE_DONE else {
                let message = String(cString: sqlite3_errmsg(connection))
                sqlite3_reset(insert)
                throw AuditError(.io, "ledger \(job.relativePath) line \(event.line): \(message)")
            }
            guard sqlite3_changes(connection) == 1 else {
                duplicates += 1
                rollups[LocalRollupKey(event)]!.remove(event)
                continue
            }
            inserted += 1
            if let call = ScanCall(
                ts: event.timestamp, attr: owner.id, model: model, outcome: Int(event.outcome), cost: cost,
                hash: event.promptHash, sim: event.promptSim)
            {
                scanCalls.append(call)
            }
            // Calls whose id does not give their time (not a UUIDv7 of about their timestamp) are listed apart, so that
            // a scan in id order still sees every call in time order (`WasteScan`).
            if event.idText >= 0 || !EventOrder.inOrder(idHigh: event.idHigh, ts: event.timestamp) {
                sqlite3_reset(unordered)
                sqlite3_bind_int64(unordered, 1, event.timestamp)
                if event.idText >= 0 {
                    _ = parsed.strings[event.idText].withCString { sqlite3_bind_text(unordered, 2, $0, -1, SQLITE_TRANSIENT_VALUE) }
                } else {
                    var bytes = (event.idHigh.bigEndian, event.idLow.bigEndian)
                    _ = withUnsafeBytes(of: &bytes) { sqlite3_bind_blob(unordered, 2, $0.baseAddress, 16, SQLITE_TRANSIENT_VALUE) }
                }
                guard sqlite3_step(unordered) == SQLITE_DONE else {
                    throw AuditError(.io, "ledger \(job.relativePath) line \(event.line): \(String(cString: sqlite3_errmsg(connection)))")
                }
            }
        }
        sqlite3_reset(insert)
        sqlite3_reset(unordered)
        try ScanBlocks.write(&scanCalls, db)

        // The rollup sums of what was inserted, now in ledger ids.
        var failed = 0
        var unpriced = 0
        for (local, sums) in rollups where sums.requests > 0 {
            let owner = owners[Int(local.key)]
            let key = RollupKey(
                day: Int64(local.day), attr: owner.id, provider: try dim(.provider, local.provider),
                model: try dim(.model, local.model), endUser: local.endUser >= 0 ? try dim(.endUser, local.endUser) : 0,
                tags: local.tags >= 0 ? try dim(.tags, local.tags) : 0, priced: local.priced,
                serviceTier: local.serviceTier >= 0 ? try dim(.serviceTier, local.serviceTier) : 0, notes: Int64(local.notes))
            pendingRollups.add(key, sums)
            failed += Int(sums.failed)
            if !owner.known { totals.unknownKeys[parsed.strings[local.key], default: 0] += Int(sums.requests) }
            if !local.priced {
                unpriced += Int(sums.requests)
                totals.unpricedModels[parsed.strings[local.model], default: 0] += Int(sums.requests)
            }
        }

        // Bad lines, and the cut-short tail of a closed segment, are kept with their reasons.
        var quarantine = parsed.quarantined
        if job.file.isClosed, parsed.summary.skippedTailBytes > 0 {
            quarantine.append(
                QuarantinedLine(
                    line: parsed.lastLine + 1, kind: "cut_short",
                    reason: "the segment ends inside a line (\(parsed.summary.skippedTailBytes) bytes without a newline)",
                    length: parsed.summary.skippedTailBytes, text: parsed.summary.tail))
        }
        var quarantined = 0
        for line in quarantine {
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO quarantine (segment, line, kind, reason, length, text, run, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    segmentID, line.line, line.kind, line.reason, line.length, Data(line.text), runID,
                    line.ts ?? job.file.openedAt * 1000,
                ])
            quarantined += db.changesCount
        }

        pendingEvents += parsed.events.count

        let damage = parsed.summary.damage
        try db.execute(
            sql: """
                UPDATE segments SET offset = ?, lines = ?, events = events + ?, duplicates = duplicates + ?,
                    quarantined = quarantined + ?, damage = ? WHERE id = ?
                """, arguments: [parsed.endOffset, parsed.lastLine, inserted, duplicates, quarantined, damage, segmentID])

        totals.segmentsRead += 1
        totals.events += inserted
        totals.duplicates += duplicates
        totals.quarantined += quarantined
        totals.unpriced += unpriced
        totals.failed += failed
        if damage != nil { totals.damaged.append(job.relativePath) }
    }

    @inline(__always)
    private func bind(_ statement: OpaquePointer, _ column: Int32, _ value: Int64?) {
        if let value { sqlite3_bind_int64(statement, column, value) } else { sqlite3_bind_null(statement, column) }
    }
}

/// SQLite's `SQLITE_TRANSIENT`: bind makes its own copy.
let SQLITE_TRANSIENT_VALUE = unsafeBitCast(Int(-1), to: sqlite3_destructor_type.self)
