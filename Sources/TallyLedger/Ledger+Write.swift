import GRDB

extension Ledger {
    /// The writes of one transaction: what must land together or not at all (a decision and its journal row, a
    /// period's pool moves and proposals). Only `Ledger.write` makes one.
    package struct Transaction {
        let db: Database
    }

    /// Runs `body` in one transaction, committed when it returns and rolled back when it throws.
    package func write<T>(_ body: (Transaction) throws -> T) throws(AuditError) -> T {
        try access { db in
            var result: T?
            // A savepoint: a transaction of its own, or a part of a rehearsal's (`rehearse`).
            try db.inSavepoint {
                result = try body(Transaction(db: db))
                return .commit
            }
            return result!
        }
    }
}

extension Ledger.Transaction {
    /// Appends one journal row, chained to the one before (`Journal`).
    package func appendJournal(at: Int64, kind: String, subject: String, detail: String) throws {
        try Journal.append(db, at: at, kind: kind, subject: subject, detail: detail)
    }

    /// The latest journal row of each subject among `kinds`.
    package func latestJournal(kinds: [String]) throws -> [String: Journal.Entry] {
        try Journal.latest(db, kinds: kinds)
    }
}
