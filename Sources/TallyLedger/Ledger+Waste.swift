import GRDB
import GRDBSQLite
import Report
import TallyCore

/// One row of the `waste` table. Names are UTF-8 bytes the scan keeps per id, so a row costs no allocation.
package struct WasteRecord {
    package var kind: WasteKind
    package var subject: [UInt8]
    package var model: [UInt8]
    package var team: [UInt8]
    package var keys: [UInt8]
    package var users: [UInt8]
    package var first: Int64
    package var last: Int64
    package var calls: Int
    package var repeats: Int
    package var errors: Int
    package var cost: Int64
    package var countsAsWaste: Bool
    package var detail: String

    package init(
        kind: WasteKind, subject: [UInt8], model: [UInt8], team: [UInt8], keys: [UInt8], users: [UInt8], first: Int64,
        last: Int64, calls: Int, repeats: Int, errors: Int, cost: Int64, countsAsWaste: Bool, detail: String
    ) {
        self.kind = kind
        self.subject = subject
        self.model = model
        self.team = team
        self.keys = keys
        self.users = users
        self.first = first
        self.last = last
        self.calls = calls
        self.repeats = repeats
        self.errors = errors
        self.cost = cost
        self.countsAsWaste = countsAsWaste
        self.detail = detail
    }
}

extension Ledger {
    /// The findings an audit stored for the month `label`, in stored order (rows of a kind this Tally does not know
    /// are left out).
    package func storedWasteFindings(period label: String) throws(AuditError) -> [WasteFinding] {
        try access { db in
            try Row.fetchAll(db, sql: "SELECT \(LedgerWasteRows.columns) FROM waste WHERE period = ? ORDER BY rowid", arguments: [label])
                .map(LedgerWasteRows.row).filter(\.kind.isKnown)
        }
    }

    /// The latest month with findings of `kind`.
    package func latestWastePeriod(kind: WasteKind) throws(AuditError) -> String? {
        try access { db in try String.fetchOne(db, sql: "SELECT MAX(period) FROM waste WHERE kind = ?", arguments: [kind.rawValue]) }
    }

    /// The values of one kind of dimension, by id.
    package func dimensionValues(_ kind: DimensionKind) throws(AuditError) -> [Int64: String] {
        try access { db in
            var values: [Int64: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, value FROM dims WHERE kind = ?", arguments: [kind.rawValue]) {
                values[row[0]] = row[1]
            }
            return values
        }
    }

    /// Every call that reached a provider from `from` to `to` (both included), in time order, from the scan blocks.
    /// Each block is read once, so SQLite's page cache is held small meanwhile: it would only hold memory the caller's
    /// tables need.
    package func scanCalls(from: Int64, to: Int64, _ body: (ScanCall) throws -> Void) throws(AuditError) {
        try access { db in
            try Ledger.withSmallPageCache(db) {
                try ScanBlocks.forEach(db, from: from, to: to, body)
            }
        }
    }

    /// Replaces the period's findings with those `produce` hands to its `insert`, in one transaction.
    package func replaceWaste(period label: String, _ produce: (_ insert: (WasteRecord) throws -> Void) throws -> Void) throws(AuditError) {
        try access { db in
            try db.inSavepoint {
                try db.execute(sql: "DELETE FROM waste WHERE period = ?", arguments: [label])
                let insert = try db.cachedStatement(
                    sql: """
                        INSERT INTO waste (period, kind, subject, model, team, keys, users, first_ts, last_ts, calls, repeats, errors, cost,
                                           counts_as_waste, detail)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """
                ).sqliteStatement
                // The row's bytes outlive the step that reads them (the row is alive until `insert` returns, and
                // every row binds these columns anew), so SQLite need not copy them.
                func text(_ column: Int32, _ bytes: [UInt8]) {
                    _ = bytes.withUnsafeBufferPointer { buffer in
                        // A pointer that is never null, also for an empty name (null would store NULL).
                        sqlite3_bind_text(
                            insert, column, buffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(Ledger.emptyText.utf8Start),
                            Int32(buffer.count), nil)
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
                        throw AuditError(.io, "ledger \(path): \(String(cString: sqlite3_errmsg(db.sqliteConnection)))")
                    }
                }
                sqlite3_reset(insert)
                sqlite3_clear_bindings(insert)
                return .commit
            }
        }
    }
    private static let emptyText: StaticString = ""
}

extension Ledger {
    /// The month's stored findings: totals by kind and the costliest few read now, every row read again, in order,
    /// when waste.csv is written. A busy month holds hundreds of thousands of them; none is kept in memory.
    package func wasteFindings(period label: String) throws(AuditError) -> WasteFindings {
        try access { db in
            // One pass in stored order: equally costly findings then keep the file's order among the costliest.
            var summary = WasteFindings.Summary()
            // The audit stores a month's rows in waste.csv's order; whether these are is checked on the way, so that
            // writing the file needs no sort (ledgers from older Tallies may break ties otherwise).
            var inOrder = true
            var previous: (kind: Int, cost: Int64, first: Int64, subject: String)?
            let cursor = try Row.fetchCursor(
                db, sql: "SELECT \(LedgerWasteRows.columns) FROM waste WHERE period = ? ORDER BY rowid",
                arguments: [label])
            while let r = try cursor.next() {
                let kind: String = r[0]
                let cost: Int64 = r[11]
                if inOrder, let rank = LedgerWasteRows.kindRank[kind] {
                    let this = (kind: rank, cost: -cost, first: r[6] as Int64, subject: r[1] as String)
                    if let p = previous,
                        (this.kind, this.cost, this.first) != (p.kind, p.cost, p.first)
                            ? (this.kind, this.cost, this.first) < (p.kind, p.cost, p.first)
                            : this.subject.utf8.lexicographicallyPrecedes(p.subject.utf8)
                    {
                        inOrder = false
                    }
                    previous = this
                } else {
                    inOrder = false
                }
                summary.add(kind: WasteKind(rawValue: kind), cost: Money(picos: Int128(cost)), countsAsWaste: r[12]) {
                    LedgerWasteRows.row(r)
                }
            }
            return WasteFindings(
                kinds: summary.kinds, costliest: summary.costliest,
                source: LedgerWasteRows(ledger: self, label: label, inOrder: inOrder))
        }
    }
}

/// A month's `waste` rows, read from the ledger in waste.csv's order while the file is written: by kind as `WasteKind`
/// lists them, costliest first, then oldest, then by subject.
final class LedgerWasteRows: WasteFindingSource {
    static let columns = "kind, subject, model, team, keys, users, first_ts, last_ts, calls, repeats, errors, cost, counts_as_waste, detail"
    /// Kinds in `WasteKind`'s order; a month with a kind this Tally does not know has its rows sorted.
    static let kindRank = Dictionary(uniqueKeysWithValues: WasteKind.known.enumerated().map { ($1.rawValue, $0) })
    private static let kindOrder =
        "CASE kind " + WasteKind.known.enumerated().map { "WHEN '\($1.rawValue)' THEN \($0)" }.joined(separator: " ")
        + " ELSE \(WasteKind.known.count) END"

    let ledger: Ledger
    let label: String
    /// Whether the rows are stored in the file's order already, as audits store them.
    let inOrder: Bool

    init(ledger: Ledger, label: String, inOrder: Bool) {
        self.ledger = ledger
        self.label = label
        self.inOrder = inOrder
    }

    func forEachRow(_ body: (WasteFinding) throws(FileIOError) -> Void) throws(FileIOError) {
        do {
            try ledger.access { db in
                let order = inOrder ? "rowid" : "\(Self.kindOrder), kind, cost DESC, first_ts, subject, rowid"
                let cursor = try Row.fetchCursor(
                    db, sql: "SELECT \(Self.columns) FROM waste WHERE period = ? ORDER BY \(order)", arguments: [label])
                while let r = try cursor.next() { try body(Self.row(r)) }
            }
        } catch {
            // What `body` threw comes back as the ledger's error's cause.
            if let written = error.cause as? FileIOError { throw written }
            throw FileIOError(code: .io, message: "cannot read the \(label) waste findings: \(error.message)")
        }
    }

    /// A row selected as `columns`.
    static func row(_ r: Row) -> WasteFinding {
        let keys: String = r[4]
        let users: String = r[5]
        return WasteFinding(
            kind: WasteKind(rawValue: r[0]), subject: r[1], model: r[2], team: r[3],
            keys: keys.isEmpty ? [] : keys.split(separator: ",").map(String.init),
            users: users.isEmpty ? [] : users.split(separator: ",").map(String.init),
            firstSeen: r[6], lastSeen: r[7], calls: r[8], repeats: r[9], errors: r[10],
            cost: Money(picos: Int128(r[11] as Int64)), countsAsWaste: r[12], detail: r[13])
    }
}
