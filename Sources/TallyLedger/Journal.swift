import Crypto
import Foundation
import GRDB
import TallyCore
import UsageLog

/// The ledger's append-only record of what changed budgets and keys: budget changes, away releases, pool draws,
/// approved reallocations, revocations and restores, people's decisions (`docs/ledger.md`, `journal`).
///
/// Each row holds the SHA-256 of the row before it (`prev_hash`) and its own hash over that and its content, so that
/// altering or removing a row breaks the chain from there on; `meta.journal_head` names the last row, so removing
/// rows from the end shows too. `tally verify` checks both.
public enum Journal {
    public struct Entry: Sendable, Equatable {
        public var id: Int64
        public var at: Int64
        public var kind: String
        public var subject: String
        public var detail: String

        public init(id: Int64, at: Int64, kind: String, subject: String, detail: String) {
            self.id = id
            self.at = at
            self.kind = kind
            self.subject = subject
            self.detail = detail
        }
    }

    package static let genesis = Data(repeating: 0, count: 32)

    /// Appends one row; call inside the transaction that makes the change it records.
    static func append(_ db: Database, at: Int64, kind: String, subject: String, detail: String) throws {
        let last = try Row.fetchOne(db, sql: "SELECT id, hash FROM journal ORDER BY id DESC LIMIT 1")
        let id: Int64 = (last?[0] ?? 0) + 1
        let previous: Data = last?[1] ?? genesis
        let hash = Self.hash(previous: previous, Entry(id: id, at: at, kind: kind, subject: subject, detail: detail))
        try db.execute(
            sql: "INSERT INTO journal (id, at, kind, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [id, at, kind, subject, detail, previous, hash])
        try db.execute(
            sql: "INSERT INTO meta (key, value) VALUES ('journal_head', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            arguments: ["\(id) \(Hex.encode(hash))"])
    }

    /// SHA-256 over the previous row's hash and this row's fields, each field length-prefixed so that no two
    /// different rows share the bytes.
    package static func hash(previous: Data, _ entry: Entry) -> Data {
        var bytes = [UInt8](previous)
        for field in ["\(entry.id)", "\(entry.at)", entry.kind, entry.subject, entry.detail] {
            bytes += Array("\(field.utf8.count):".utf8) + Array(field.utf8)
        }
        return Data(SHA256.hash(data: bytes))
    }

    /// What `tally verify` found.
    public struct Verification: Sendable {
        public var rows: Int
        /// The last row's hash, hex.
        public var head: String
        /// What is wrong, first problem first; empty when the chain is whole.
        public var problems: [String]
    }

    public static func verify(ledger: Ledger) throws(AuditError) -> Verification {
        try ledger.access { db in
            var problems: [String] = []
            var previous = genesis
            var expectedID: Int64 = 1
            var rows = 0
            let cursor = try Row.fetchCursor(db, sql: "SELECT id, at, kind, subject, detail, prev_hash, hash FROM journal ORDER BY id")
            while let row = try cursor.next() {
                let entry = Entry(id: row[0], at: row[1], kind: row[2], subject: row[3], detail: row[4])
                let storedPrevious: Data = row[5]
                let stored: Data = row[6]
                let what = "journal row \(entry.id) (\(entry.kind) \(entry.subject))"
                if entry.id != expectedID { problems.append("journal rows \(expectedID)...\(entry.id - 1) are missing: removed") }
                if storedPrevious != previous {
                    problems.append("\(what) does not follow the row before it: a row before it was altered or removed")
                }
                if hash(previous: storedPrevious, entry) != stored {
                    problems.append("\(what) was altered: its hash does not match its content")
                }
                previous = stored
                expectedID = entry.id + 1
                rows += 1
            }
            let head = rows == 0 ? "" : Hex.encode(previous)
            let recorded = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'journal_head'")
            if let recorded, recorded != "\(expectedID - 1) \(head)" {
                problems.append(
                    "the journal ends at row \(expectedID - 1) but the ledger recorded its last row as \(recorded.split(separator: " ").first ?? ""): rows were removed from the end or the last row was altered"
                )
            } else if recorded == nil, rows > 0 {
                problems.append("the ledger has no record of the journal's last row (meta.journal_head was removed)")
            }
            return Verification(rows: rows, head: head, problems: problems)
        }
    }

    /// The latest row of each subject among `kinds`.
    static func latest(_ db: Database, kinds: [String]) throws -> [String: Entry] {
        var result: [String: Entry] = [:]
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT id, at, kind, subject, detail FROM journal WHERE kind IN (\(kinds.map { _ in "?" }.joined(separator: ","))) ORDER BY id
                """, arguments: StatementArguments(kinds))
        while let row = try rows.next() {
            let entry = Entry(id: row[0], at: row[1], kind: row[2], subject: row[3], detail: row[4])
            result[entry.subject] = entry
        }
        return result
    }
}
