import GRDB
import Foundation
import GRDBSQLite
import TallyConfig
import UsageLog

/// Reads a period's calls from the ledger in time order, runs the waste rules over them, and keeps the findings in
/// the ledger's `waste` table (replacing that period's earlier findings, since each run recomputes them).
public enum WasteScan {
    /// Findings for calls from `from` up to `to` (milliseconds, both included), labelled `label`.
    public static func run(ledger: Ledger, config: Config, from: Int64, to: Int64, label: String) throws(AuditError) -> WasteResult {
        let rules = WasteRules(config.audit)
        // The ledger is read on this thread while the rules run on another, batch by batch.
        let pipeline = DetectorThread(WasteDetector(rules: rules, periodStart: from))
        defer { _ = pipeline.finish() }  // on a failed read, so the thread ends
        var batch: [WasteCall] = []
        batch.reserveCapacity(DetectorThread.batchSize)
        func send(_ call: WasteCall) {
            batch.append(call)
            if batch.count == DetectorThread.batchSize {
                pipeline.send(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        let names = try ledger.access { db in try Names(db) }
        try ledger.access { db in
            // Calls whose id does not give their time, sorted by time, merged in as the ordered stream passes them.
            var stragglers: [WasteCall] = []
            try read(db, ledger: ledger, sql: """
                SELECT e.ts, e.attr, e.model, e.outcome, e.cost, e.prompt_hash, e.prompt_sim
                FROM events_unordered u JOIN events e ON e.id = u.id WHERE u.ts >= ? AND u.ts <= ? ORDER BY u.ts
                """, bind: { statement in
                    sqlite3_bind_int64(statement, 1, from - rules.lookBack)
                    sqlite3_bind_int64(statement, 2, to)
                }, names: names) { call, _ in stragglers.append(call) }
            var next = 0
            func emit(_ call: WasteCall) {
                while next < stragglers.count, stragglers[next].ts <= call.ts {
                    send(stragglers[next])
                    next += 1
                }
                send(call)
            }
            // Everything else in key order, which is time order give or take `EventOrder.slack`: a call leaves the
            // buffer once the scan has passed its time by more than that.
            var buffer = CallBuffer()
            try read(db, ledger: ledger, sql: """
                SELECT ts, attr, model, outcome, cost, prompt_hash, prompt_sim, id FROM events WHERE id >= ? AND id < ?
                """, bind: { statement in
                    let (low, high) = EventOrder.keyRange(from: from - rules.lookBack, to: to)
                    _ = low.withUnsafeBytes { sqlite3_bind_blob(statement, 1, $0.baseAddress, 16, SQLITE_TRANSIENT_VALUE) }
                    _ = high.withUnsafeBytes { sqlite3_bind_blob(statement, 2, $0.baseAddress, 16, SQLITE_TRANSIENT_VALUE) }
                }, names: names) { call, idHigh in
                    guard let idHigh, EventOrder.inOrder(idHigh: idHigh, ts: call.ts) else { return }
                    guard call.ts >= from - rules.lookBack, call.ts <= to else { return }
                    let passed = Int64(idHigh >> 16) - EventOrder.slack
                    while let first = buffer.first, first.ts < passed { emit(buffer.pop()) }
                    buffer.push(call)
                }
            while !buffer.isEmpty { emit(buffer.pop()) }
            while next < stragglers.count {
                send(stragglers[next])
                next += 1
            }
        }
        pipeline.send(batch)
        let detector = pipeline.finish()
        // Clusters go into the ledger straight from the detector's numbers; a finding (with its strings) is made only
        // for the few a run prints.
        var result = WasteResult(periodLabel: label, findings: [], calls: detector.callsInPeriod)
        try store(label: label, ledger: ledger) { insert in
            try names.forEachCluster(detector) { cluster, kind, rank in
                let counts = kind == .exactDuplicate || (kind == .nearDuplicate && rules.nearCountsAsWaste)
                try insert(names.row(cluster, kind, countsAsWaste: counts, rules: rules, currency: config.currency))
                result.counts[kind, default: 0] += 1
                result.costs[kind, default: .zero] += Money(picos: Int128(cluster.cost))
                if counts { result.total += Money(picos: Int128(cluster.cost)) }
                if kind == .retryLoop || kind == .runaway || rank < WasteResult.kept {
                    result.findings.append(names.finding(cluster, kind, rules: rules, currency: config.currency))
                }
            }
        }
        return result
    }

    /// Steps through `sql`'s rows (ts, attr, model, outcome, cost, prompt_hash, prompt_sim[, id]), handing each call
    /// that reached a provider to `body` with its id's first 8 bytes when the id is 16 bytes.
    private static func read(_ db: Database, ledger: Ledger, sql: String, bind: (OpaquePointer) -> Void, names: Names,
                             _ body: (WasteCall, UInt64?) -> Void) throws {
        var statement: OpaquePointer?
        let connection = db.sqliteConnection
        guard sqlite3_prepare_v2(connection, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw AuditError(.io, "ledger \(ledger.path): \(String(cString: sqlite3_errmsg(connection)))")
        }
        defer { sqlite3_finalize(statement) }
        bind(statement)
        let hasID = sqlite3_column_count(statement) > 7
        while true {
            let rc = sqlite3_step(statement)
            guard rc == SQLITE_ROW else {
                guard rc == SQLITE_DONE else { throw AuditError(.io, "ledger \(ledger.path): \(String(cString: sqlite3_errmsg(connection)))") }
                return
            }
            let outcome = StoredEnums.outcomeClass(Int(sqlite3_column_int64(statement, 3)))
            // Refused calls never reached a provider: no cost, no waste.
            guard outcome != .rejected else { continue }
            let attr = Int(sqlite3_column_int64(statement, 1))
            let owner = names.owner(attr)
            var idHigh: UInt64?
            if hasID, sqlite3_column_type(statement, 7) == SQLITE_BLOB, sqlite3_column_bytes(statement, 7) == 16,
               let bytes = sqlite3_column_blob(statement, 7) {
                idHigh = UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
            }
            body(WasteCall(
                ts: sqlite3_column_int64(statement, 0), attr: Int32(attr), key: owner.key, team: owner.team,
                model: Int32(truncatingIfNeeded: sqlite3_column_int64(statement, 2)), ok: outcome == .ok, failed: outcome == .failed,
                cost: sqlite3_column_int64(statement, 4),
                hash: sqlite3_column_type(statement, 5) == SQLITE_NULL ? nil : sqlite3_column_int64(statement, 5),
                sim: sqlite3_column_type(statement, 6) == SQLITE_NULL ? nil : UInt64(bitPattern: sqlite3_column_int64(statement, 6))),
                idHigh)
        }
    }

    /// The findings stored for a period by the last audit.
    public static func stored(ledger: Ledger, label: String) throws(AuditError) -> [WasteFinding] {
        try ledger.access { db in
            try GRDB.Row.fetchAll(db, sql: """
                SELECT kind, subject, model, team, keys, users, first_ts, last_ts, calls, repeats, errors, cost, counts_as_waste, detail
                FROM waste WHERE period = ? ORDER BY rowid
                """, arguments: [label]).compactMap { row in
                guard let kind = WasteKind(rawValue: row[0]) else { return nil }
                let keys: String = row[4], users: String = row[5]
                return WasteFinding(kind: kind, subject: row[1], model: row[2], team: row[3],
                                    keys: keys.isEmpty ? [] : keys.split(separator: ",").map(String.init),
                                    users: users.isEmpty ? [] : users.split(separator: ",").map(String.init),
                                    firstSeen: row[6], lastSeen: row[7], calls: row[8], repeats: row[9], errors: row[10],
                                    cost: Money(picos: Int128(row[11] as Int64)), countsAsWaste: row[12], detail: row[13])
            }
        }
    }

    /// Runaway episodes the audits recorded, latest period first; what `tally keys` enforces between audits.
    static func storedRunaways(ledger: Ledger) throws(AuditError) -> [WasteFinding] {
        let label = try ledger.access { db in try String.fetchOne(db, sql: "SELECT MAX(period) FROM waste WHERE kind = 'runaway'") }
        guard let label else { return [] }
        return try stored(ledger: ledger, label: label).filter { $0.kind == .runaway }
    }

    /// One row of the `waste` table. Names are UTF-8 bytes the scan keeps per id, so a row costs no allocation.
    struct Row {
        var kind: WasteKind
        var subject: [UInt8]
        var model: [UInt8]
        var team: [UInt8]
        var keys: [UInt8]
        var users: [UInt8]
        var first: Int64
        var last: Int64
        var calls: Int
        var repeats: Int
        var errors: Int
        var cost: Int64
        var countsAsWaste: Bool
        var detail: String
    }

    /// Replaces the period's findings with those `produce` hands to its `insert`, in one transaction.
    static func store(label: String, ledger: Ledger, _ produce: (_ insert: (Row) throws -> Void) throws -> Void) throws(AuditError) {
        try ledger.access { db in
            try db.inTransaction {
                try db.execute(sql: "DELETE FROM waste WHERE period = ?", arguments: [label])
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO waste (period, kind, subject, model, team, keys, users, first_ts, last_ts, calls, repeats, errors, cost,
                                       counts_as_waste, detail)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).sqliteStatement
                func text(_ column: Int32, _ bytes: [UInt8]) {
                    _ = bytes.withUnsafeBufferPointer { buffer in
                        // A pointer that is never null, also for an empty name (null would store NULL).
                        sqlite3_bind_text(insert, column, buffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(Self.empty.utf8Start),
                                          Int32(buffer.count), SQLITE_TRANSIENT_VALUE)
                    }
                }
                func text(_ column: Int32, _ value: String) {
                    _ = value.withCString { sqlite3_bind_text(insert, column, $0, -1, SQLITE_TRANSIENT_VALUE) }
                }
                // Bindings outlive a reset, so what every row shares is bound once.
                sqlite3_reset(insert)
                sqlite3_clear_bindings(insert)
                text(1, label)
                var boundKind: WasteKind?
                try produce { row in
                    sqlite3_reset(insert)
                    if row.kind != boundKind {
                        text(2, row.kind.rawValue)
                        boundKind = row.kind
                    }
                    text(3, row.subject)
                    text(4, row.model)
                    text(5, row.team)
                    text(6, row.keys)
                    text(7, row.users)
                    sqlite3_bind_int64(insert, 8, row.first)
                    sqlite3_bind_int64(insert, 9, row.last)
                    sqlite3_bind_int64(insert, 10, Int64(row.calls))
                    sqlite3_bind_int64(insert, 11, Int64(row.repeats))
                    sqlite3_bind_int64(insert, 12, Int64(row.errors))
                    sqlite3_bind_int64(insert, 13, row.cost)
                    sqlite3_bind_int64(insert, 14, row.countsAsWaste ? 1 : 0)
                    text(15, row.detail)
                    guard sqlite3_step(insert) == SQLITE_DONE else {
                        throw AuditError(.io, "ledger \(ledger.path): \(String(cString: sqlite3_errmsg(db.sqliteConnection)))")
                    }
                }
                sqlite3_reset(insert)
                sqlite3_clear_bindings(insert)
                return .commit
            }
        }
    }
    private static let empty: StaticString = ""

    /// Runs a detector on its own thread over the batches it is sent, so that reading the ledger and applying the
    /// rules use two cores.
    private final class DetectorThread: @unchecked Sendable {
        static let batchSize = 8192
        private let condition = NSCondition()
        private var queue: [[WasteCall]] = []
        private var closed = false
        private var done = false
        private var detector: WasteDetector

        init(_ detector: WasteDetector) {
            self.detector = detector
            let thread = Thread { [self] in run() }
            thread.stackSize = 1 << 20
            thread.start()
        }

        /// Hands over a batch, waiting while the detector is more than a few batches behind.
        func send(_ batch: [WasteCall]) {
            condition.lock()
            while queue.count >= 8 { condition.wait() }
            queue.append(batch)
            condition.broadcast()
            condition.unlock()
        }

        /// Waits for the detector to finish what it was sent and returns it.
        func finish() -> WasteDetector {
            condition.lock()
            closed = true
            condition.broadcast()
            while !done { condition.wait() }
            condition.unlock()
            return detector
        }

        private func run() {
            var detector = self.detector
            while true {
                condition.lock()
                while queue.isEmpty && !closed { condition.wait() }
                if queue.isEmpty {
                    self.detector = detector
                    done = true
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                let batch = queue.removeFirst()
                condition.broadcast()
                condition.unlock()
                detector.add(batch)
            }
        }
    }

    /// Calls waiting for the scan to pass their time, in time order. They nearly always arrive in order, so a call
    /// is appended; one that arrives early is inserted in its place.
    private struct CallBuffer {
        private var items: [WasteCall] = []
        private var head = 0
        var isEmpty: Bool { head == items.count }
        var first: WasteCall? { head < items.count ? items[head] : nil }

        mutating func push(_ call: WasteCall) {
            guard let last = items.last, last.ts > call.ts, items.count > head else {
                items.append(call)
                return
            }
            var position = items.count - 1
            while position > head, items[position - 1].ts > call.ts { position -= 1 }
            items.insert(call, at: position)
        }

        mutating func pop() -> WasteCall {
            let call = items[head]
            head += 1
            if head >= 4096, head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return call
        }
    }

    /// The ledger's attributions and model names, numbered for the detector.
    private struct Names {
        /// By attribution id (small, dense): the key's and the team's numbers.
        var owners: [(key: Int32, team: Int32)] = []
        var keyNames: [String] = []
        var teamNames: [String] = []
        var attrKey: [Int32: String] = [:]
        var attrUser: [Int32: String] = [:]
        var models: [Int32: String] = [:]
        var attrKeyBytes: [Int32: [UInt8]] = [:]
        var attrUserBytes: [Int32: [UInt8]] = [:]
        var teamBytes: [[UInt8]] = []
        var modelBytes: [Int32: [UInt8]] = [:]

        init(_ db: Database) throws {
            var keyIndex: [String: Int32] = [:]
            var teamIndex: [String: Int32] = [:]
            for row in try GRDB.Row.fetchAll(db, sql: "SELECT id, key, user, team FROM attributions") {
                let id: Int = row[0], key: String = row[1], user: String = row[2], team: String = row[3]
                let k = keyIndex[key] ?? { keyIndex[key] = Int32(keyNames.count); keyNames.append(key); return Int32(keyNames.count - 1) }()
                let t = teamIndex[team] ?? { teamIndex[team] = Int32(teamNames.count); teamNames.append(team); return Int32(teamNames.count - 1) }()
                if id >= owners.count { owners += Array(repeating: (-1, -1), count: id + 1 - owners.count) }
                owners[id] = (k, t)
                attrKey[Int32(id)] = key
                attrUser[Int32(id)] = user
            }
            for row in try GRDB.Row.fetchAll(db, sql: "SELECT id, value FROM dims WHERE kind = ?", arguments: [DimensionKind.model.rawValue]) {
                models[Int32(row[0] as Int64)] = row[1]
            }
            attrKeyBytes = attrKey.mapValues { Array($0.utf8) }
            attrUserBytes = attrUser.mapValues { Array($0.utf8) }
            teamBytes = teamNames.map { Array($0.utf8) }
            modelBytes = models.mapValues { Array($0.utf8) }
        }

        func owner(_ attr: Int) -> (key: Int32, team: Int32) { attr >= 0 && attr < owners.count ? owners[attr] : (-1, -1) }

        /// Each cluster with its kind and its rank within the kind: most costly first; ties in time order then by hash,
        /// so a diff of two runs means a change. The order is worked out on plain numbers.
        func forEachCluster(_ detector: WasteDetector, _ body: (WasteDetector.Cluster, WasteKind, Int) throws -> Void) rethrows {
            let groups: [(WasteKind, [WasteDetector.Cluster])] = [
                (.exactDuplicate, detector.exact), (.nearDuplicate, detector.near), (.retryLoop, detector.loops), (.runaway, detector.runaways),
            ]
            for (kind, clusters) in groups {
                // Sorted on plain numbers: comparing clusters themselves would copy (and retain) each one.
                var order = clusters.indices.map { i in (cost: -clusters[i].cost, first: clusters[i].first, hash: clusters[i].hash, key: clusters[i].key, index: i) }
                order.sort { ($0.cost, $0.first, $0.hash, $0.key) < ($1.cost, $1.first, $1.hash, $1.key) }
                for (rank, entry) in order.enumerated() { try body(clusters[entry.index], kind, rank) }
            }
        }

        /// The `waste` row for a cluster: the same text `finding` gives, built from bytes kept per id.
        func row(_ c: WasteDetector.Cluster, _ kind: WasteKind, countsAsWaste: Bool, rules: WasteRules, currency: String) -> Row {
            var subject: [UInt8], detail = ""
            switch kind {
            case .exactDuplicate, .nearDuplicate:
                subject = Self.hashPrefix(c.hash)
            case .retryLoop, .runaway:
                let finding = finding(c, kind, rules: rules, currency: currency)
                subject = Array(finding.subject.utf8)
                detail = finding.detail
            }
            return Row(kind: kind, subject: subject, model: c.model >= 0 ? modelBytes[c.model] ?? [] : [],
                       team: c.team >= 0 ? teamBytes[Int(c.team)] : [], keys: joined(c.attrs, keyOf), users: joined(c.attrs, userOf),
                       first: c.first, last: c.last, calls: c.calls, repeats: c.repeats, errors: c.errors, cost: c.cost,
                       countsAsWaste: countsAsWaste, detail: detail)
        }

        /// The first 12 hex digits of a prompt hash.
        static func hashPrefix(_ hash: Int64) -> [UInt8] {
            let word = UInt64(bitPattern: hash)
            return (0..<12).map { hexDigits[Int((word >> UInt64(60 - 4 * $0)) & 0xF)] }
        }
        private static let hexDigits = Array("0123456789abcdef".utf8)

        private func keyOf(_ attr: Int32) -> [UInt8]? { attrKeyBytes[attr] }
        private func userOf(_ attr: Int32) -> [UInt8]? { attrUserBytes[attr].flatMap { $0.isEmpty ? nil : $0 } }

        /// The distinct names of `attrs`, sorted and joined with commas (one name, the common case, as it is).
        private func joined(_ attrs: [Int32], _ name: (Int32) -> [UInt8]?) -> [UInt8] {
            if attrs.count == 1 { return name(attrs[0]) ?? [] }
            var names: [[UInt8]] = []
            for attr in attrs { if let n = name(attr), !names.contains(n) { names.append(n) } }
            names.sort { String(decoding: $0, as: UTF8.self) < String(decoding: $1, as: UTF8.self) }
            return Array(names.joined(separator: [UInt8(ascii: ",")]))
        }

        func finding(_ c: WasteDetector.Cluster, _ kind: WasteKind, rules: WasteRules, currency: String) -> WasteFinding {
            var keys: [String] = [], users: [String] = []
            for attr in c.attrs {
                if let key = attrKey[attr], !keys.contains(key) { keys.append(key) }
                if let user = attrUser[attr], !user.isEmpty, !users.contains(user) { users.append(user) }
            }
            let hashText = String(decoding: Self.hashPrefix(c.hash), as: UTF8.self)
            let subject: String, counts: Bool, detail: String
            switch kind {
            case .exactDuplicate: (subject, counts, detail) = (hashText, true, "")
            case .nearDuplicate: (subject, counts, detail) = (hashText, rules.nearCountsAsWaste, "")
            case .retryLoop:
                (subject, counts, detail) = (keyNames[Int(c.key)], false, "\(c.calls) identical prompts (\(hashText)), \(c.errors) failed")
            case .runaway:
                (subject, counts, detail) = (keyNames[Int(c.key)], false,
                                             "peak \(c.peakRequests) requests/min, \(Enforcement.amount(Money(picos: c.peakSpend))) \(currency) in an hour")
            }
            return WasteFinding(kind: kind, subject: subject, model: c.model >= 0 ? models[c.model] ?? "" : "",
                                team: c.team >= 0 ? teamNames[Int(c.team)] : "", keys: keys.sorted(), users: users.sorted(),
                                firstSeen: c.first, lastSeen: c.last, calls: c.calls, repeats: c.repeats, errors: c.errors,
                                cost: Money(picos: Int128(c.cost)), countsAsWaste: counts, detail: detail)
        }
    }
}
