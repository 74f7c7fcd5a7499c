import Foundation
import GRDB
import GRDBSQLite
import TallyConfig
import UsageLog

/// Who a key's spend belongs to, as the config said when the call was ingested.
struct Attribution: Hashable, Sendable {
    var key: String
    /// False for a key the config does not list (a removed key): its calls stay in the ledger as `unknown`.
    var known: Bool
    var user: String
    var project: String
    var team: String
    var org: String

    /// The attribution the config gives `key`: its user, its project, the project's team (else the user's), the team's org.
    static func resolving(key: String, config: Config) -> Attribution {
        guard let entry = config.keys.first(where: { $0.id == key }) else {
            return Attribution(key: key, known: false, user: "", project: "", team: "", org: "")
        }
        let user = entry.user ?? ""
        let project = entry.project ?? ""
        let team = entry.project.flatMap { id in config.projects.first { $0.id == id }?.team }
            ?? entry.user.flatMap { id in config.users.first { $0.id == id }?.team } ?? ""
        let org = config.teams.first { $0.id == team }?.org ?? ""
        return Attribution(key: key, known: true, user: user, project: project, team: team, org: org)
    }
}

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
struct IngestWriter {
    let config: Config
    let prices: PriceBook
    let runID: Int64
    var calendar: LocalCalendar
    var totals = IngestTotals()

    private var dimensionIDs: [DimensionKind: [String: Int64]] = [:]
    private var attributionIDs: [Attribution: Int64] = [:]
    private var attributionByKey: [String: (id: Int64, known: Bool)] = [:]
    private var priceIDs: [PriceEntry: Int64] = [:]
    private var schedules: [ModelAndProvider: PriceSchedule] = [:]

    private struct PricePosition: Hashable {
        var slot: Int
        var list: Int
        var index: Int
    }

    private struct ModelAndProvider: Hashable {
        var model: String
        var provider: String
    }

    init(config: Config, prices: PriceBook, runID: Int64, calendar: LocalCalendar, db: Database) throws {
        self.config = config
        self.prices = prices
        self.runID = runID
        self.calendar = calendar
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
        let priceRows = try Row.fetchCursor(db, sql: "SELECT id, source, model, from_ms, input, output, cached_input, cache_write, reasoning FROM prices")
        var stored: [String: Int64] = [:]
        while let row = try priceRows.next() {
            stored[Self.priceSignature(source: row[1], model: row[2], from: row[3], input: row[4], output: row[5],
                                       cachedInput: row[6], cacheWrite: row[7], reasoning: row[8])] = row[0]
        }
        storedPrices = stored
    }

    private var storedPrices: [String: Int64]

    private static func priceSignature(source: String, model: String, from: Int64?, input: String, output: String,
                                       cachedInput: String?, cacheWrite: String?, reasoning: String?) -> String {
        [source, model, from.map(String.init) ?? "-", input, output, cachedInput ?? "-", cacheWrite ?? "-", reasoning ?? "-"]
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

    private mutating func attribution(key: String, _ db: Database) throws -> (id: Int64, known: Bool) {
        if let cached = attributionByKey[key] { return cached }
        let attribution = Attribution.resolving(key: key, config: config)
        let id: Int64
        if let existing = attributionIDs[attribution] {
            id = existing
        } else {
            try db.execute(sql: "INSERT INTO attributions (key, known, user, project, team, org) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [attribution.key, attribution.known, attribution.user, attribution.project, attribution.team, attribution.org])
            id = db.lastInsertedRowID
            attributionIDs[attribution] = id
        }
        attributionByKey[key] = (id, attribution.known)
        return (id, attribution.known)
    }

    private mutating func priceID(_ entry: PriceEntry, _ db: Database) throws -> Int64 {
        if let id = priceIDs[entry] { return id }
        let p = entry.price
        let signature = Self.priceSignature(source: entry.source.description, model: p.model, from: p.from, input: p.input.perMillion,
                                            output: p.output.perMillion, cachedInput: p.cachedInput?.perMillion,
                                            cacheWrite: p.cacheWrite?.perMillion, reasoning: p.reasoning?.perMillion)
        let id: Int64
        if let stored = storedPrices[signature] {
            id = stored
        } else {
            try db.execute(sql: """
                INSERT INTO prices (source, model, from_ms, currency, input, output, cached_input, cache_write, reasoning)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [entry.source.description, p.model, p.from, config.currency, p.input.perMillion, p.output.perMillion,
                                 p.cachedInput?.perMillion, p.cacheWrite?.perMillion, p.reasoning?.perMillion])
            id = db.lastInsertedRowID
            storedPrices[signature] = id
        }
        priceIDs[entry] = id
        return id
    }

    private mutating func schedule(model: String, provider: String) -> PriceSchedule {
        let key = ModelAndProvider(model: model, provider: provider)
        if let schedule = schedules[key] { return schedule }
        let schedule = prices.schedule(model: model, provider: provider)
        schedules[key] = schedule
        return schedule
    }

    // MARK: Writing a segment

    /// Events written since the batch's transaction began; the ingest commits once this passes `batchEvents`.
    private(set) var pendingEvents = 0
    private var inTransaction = false
    private var pendingRollups: [RollupKey: RollupSums] = [:]
    /// Events per transaction: large enough that commits and rollup upserts are cheap, small enough that memory stays flat.
    static let batchEvents = 250_000

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
        pendingRollups.removeAll(keepingCapacity: true)
        pendingEvents = 0
        inTransaction = false
    }

    private mutating func writeInTransaction(_ parsed: ParsedSegment, _ db: Database) throws {
        let job = parsed.job
        guard let segmentID = try Int64.fetchOne(db, sql: """
            INSERT INTO segments (path, collector, stem, closed, size, mtime, offset, lines, events, duplicates, quarantined, damage, run)
            VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0, NULL, ?)
            ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime, run = excluded.run
            RETURNING id
            """, arguments: [job.relativePath, job.file.collector, job.file.stem, job.file.isClosed, job.size, job.mtime, runID])
        else { throw AuditError(.io, "the ledger did not return an id for segment \(job.relativePath)") }

        // Strings of this segment → dimension ids, looked up once per distinct string and kind.
        // One slot per (kind, string): kinds are 1...6, so slot = index × 8 + kind.
        var local = [Int64](repeating: -1, count: parsed.strings.strings.count * 8)
        func dim(_ kind: DimensionKind, _ index: Int32) throws -> Int64 {
            let slot = Int(index) &* 8 &+ kind.rawValue
            let cached = local[slot]
            if cached >= 0 { return cached }
            let id = try dimension(kind, parsed.strings[index], db)
            local[slot] = id
            return id
        }
        var keyAttributions = [(id: Int64, known: Bool)?](repeating: nil, count: parsed.strings.strings.count)
        var localSchedules = [PriceSchedule?](repeating: nil, count: 0)
        var scheduleIndex: [Int64: Int] = [:]
        var pricedBy: [PricePosition: (entry: PriceEntry, id: Int64)] = [:]

        let connection = db.sqliteConnection
        let insert = try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO events (id, ts, attr, provider, model, collector, endpoint, status, outcome, stream,
                input, output, cached_input, cache_write, reasoning, cost, price, latency_ms, ttft_ms,
                prompt_hash, prompt_sim, prompt_chars, end_user, tags, error, segment, line)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).sqliteStatement

        var inserted = 0
        var duplicates = 0
        var failed = 0
        var unpriced = 0
        var extraQuarantine: [QuarantinedLine] = []

        for event in parsed.events {
            let keyIndex = Int(event.key)
            let owner: (id: Int64, known: Bool)
            if let cached = keyAttributions[keyIndex] { owner = cached } else {
                owner = try attribution(key: parsed.strings[event.key], db)
                keyAttributions[keyIndex] = owner
            }
            let provider = try dim(.provider, event.provider)
            let model = try dim(.model, event.model)
            let collector = try dim(.collector, event.collector)
            let endUser = event.endUser >= 0 ? try dim(.endUser, event.endUser) : 0
            let tags = event.tags >= 0 ? try dim(.tags, event.tags) : 0
            let error = event.error >= 0 ? try dim(.error, event.error) : 0

            var cost: Int64?
            var price: Int64?
            if event.hasUsage {
                let pair = model << 32 | provider
                let slot: Int
                if let found = scheduleIndex[pair] { slot = found } else {
                    slot = localSchedules.count
                    localSchedules.append(schedule(model: parsed.strings[event.model], provider: parsed.strings[event.provider]))
                    scheduleIndex[pair] = slot
                }
                let schedule = localSchedules[slot]!
                if let position = schedule.position(at: event.timestamp) {
                    // Entries are few: remember each one and its id by where the schedule found it.
                    let cacheKey = PricePosition(slot: slot, list: position.list, index: position.index)
                    let priced: (entry: PriceEntry, id: Int64)
                    if let cached = pricedBy[cacheKey] { priced = cached } else {
                        let entry = schedule[position]
                        priced = (entry, try priceID(entry, db))
                        pricedBy[cacheKey] = priced
                    }
                    let money = priced.entry.cost(input: event.input, output: event.output, cachedInput: event.cachedInput,
                                                  cacheWrite: event.cacheWrite, reasoning: event.reasoning)
                    guard let picos = Int64(exactly: money.picos) else {
                        extraQuarantine.append(QuarantinedLine(line: Int(event.line), kind: LineError.Kind.invalidUsage.rawValue,
                                                               reason: "the call's cost (\(money)) is more than the ledger holds for one call",
                                                               length: 0, text: []))
                        continue
                    }
                    cost = picos
                    price = priced.id
                }
            }

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
                sqlite3_bind_int64(insert, 11, event.input)
                sqlite3_bind_int64(insert, 12, event.output)
                sqlite3_bind_int64(insert, 13, event.cachedInput)
                sqlite3_bind_int64(insert, 14, event.cacheWrite)
                sqlite3_bind_int64(insert, 15, event.reasoning)
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
            let rc = sqlite3_step(insert)
            guard rc == SQLITE_DONE else {
                let message = String(cString: sqlite3_errmsg(connection))
                sqlite3_reset(insert)
                throw AuditError(.io, "ledger \(job.relativePath) line \(event.line): \(message)")
            }
            guard sqlite3_changes(connection) == 1 else {
                duplicates += 1
                continue
            }
            inserted += 1
            if !owner.known { totals.unknownKeys[parsed.strings[event.key], default: 0] += 1 }
            let outcome = StoredEnums.outcomes[Int(event.outcome)]
            let isFailed = outcome == .upstreamError || outcome == .clientAbort
            let isRejected = !isFailed && outcome != .ok
            if isFailed { failed += 1 }
            let isUnpriced = event.hasUsage && cost == nil
            if isUnpriced {
                unpriced += 1
                totals.unpricedModels[parsed.strings[event.model], default: 0] += 1
            }
            let key = RollupKey(day: Int64(calendar.day(of: event.timestamp)), attr: owner.id, provider: provider, model: model,
                                endUser: endUser, tags: tags, priced: !isUnpriced)
            pendingRollups[key, default: RollupSums()].add(
                failed: isFailed, rejected: isRejected, input: event.input, output: event.output, cachedInput: event.cachedInput,
                cacheWrite: event.cacheWrite, reasoning: event.reasoning, cost: cost ?? 0)
        }
        sqlite3_reset(insert)

        // Bad lines, and the cut-short tail of a closed segment, are kept with their reasons.
        var quarantine = parsed.quarantined + extraQuarantine
        if job.file.isClosed, parsed.summary.skippedTailBytes > 0 {
            quarantine.append(QuarantinedLine(
                line: parsed.lastLine + 1, kind: "cut_short",
                reason: "the segment ends inside a line (\(parsed.summary.skippedTailBytes) bytes without a newline)",
                length: parsed.summary.skippedTailBytes, text: parsed.summary.tail))
        }
        var quarantined = 0
        for line in quarantine {
            try db.execute(sql: """
                INSERT OR IGNORE INTO quarantine (segment, line, kind, reason, length, text, run) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [segmentID, line.line, line.kind, line.reason, line.length, Data(line.text), runID])
            quarantined += db.changesCount
        }

        pendingEvents += parsed.events.count

        let damage = parsed.summary.damage
        try db.execute(sql: """
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
