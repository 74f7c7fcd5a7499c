import Foundation
import GRDB
import TallyCore
import UsageLog

/// The SQLite ledger: every ingested call, what priced it, where it came from, and daily rollups (`docs/ledger.md`).
///
/// Open it with `Ledger(path:)`, which creates the file and its folder if needed and brings the schema up to date.
/// One audit writes at a time (`AuditLock`); readers (reports) may read while it writes, since the file is in WAL mode.
public final class Ledger: Sendable {
    public let path: String
    package let queue: DatabaseQueue

    /// Rollups keep cost as `cost_hi × 10^18 + cost_lo` pico-units, so that a sum never overflows SQLite's 64 bits.
    package static let costSplit: Int128 = 1_000_000_000_000_000_000

    /// A stored `cost_hi`, `cost_lo` pair as money.
    package static func cost(hi: Int64, lo: Int64) -> Money {
        Money(picos: Int128(hi) * costSplit + Int128(lo))
    }

    /// A sum of rollup costs, selected as `SUM(cost_hi), SUM(cost_lo / 1000000), SUM(cost_lo % 1000000)` (so the low
    /// parts cannot overflow either) from `row`'s columns `at`, `at + 1` and `at + 2`.
    static func summedCost(_ row: Row, at column: Int) -> Money {
        Money(
            picos: Int128(row[column] as Int64) * costSplit + Int128(row[column + 1] as Int64) * 1_000_000
                + Int128(row[column + 2] as Int64))
    }

    public init(path: String, readOnly: Bool = false) throws(AuditError) {
        self.path = path
        var configuration = Configuration()
        configuration.readonly = readOnly
        configuration.busyMode = .timeout(10)
        configuration.label = "tally.ledger"
        // The ingest keeps one transaction open across several accesses (a batch of segments); it commits or the run ends.
        configuration.allowsUnsafeTransactions = true
        configuration.prepareDatabase { db in
            if !readOnly {
                // Takes effect only when the file is created: bigger pages mean shallower trees and cheaper appends.
                try db.execute(sql: "PRAGMA page_size = 16384")
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            try db.execute(sql: "PRAGMA cache_size = -\(Ledger.pageCacheKiB)")
        }
        if readOnly {
            guard FileManager.default.fileExists(atPath: path) else {
                throw AuditError(.io, "there is no ledger at \(path) yet: run `tally audit` first")
            }
        } else {
            try Self.makeFolder(for: path)
            // Created here rather than by SQLite, so that it gets Tally's file mode (0640 by default; SQLite would make it
            // world-readable); its -wal and -shm files take the same mode from it.
            if !FileManager.default.fileExists(atPath: path) {
                do { close(try FileIO.open(path, O_WRONLY | O_CREAT)) } catch {
                    throw AuditError(.io, "cannot create the ledger \(path): \(error.message)", cause: error)
                }
            }
        }
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            if readOnly {
                let applied = try queue.read { db in try Schema.migrator.hasCompletedMigrations(db) }
                guard applied else {
                    throw AuditError(.io, "the ledger at \(path) was written by a newer or an unfinished audit: run `tally audit` first")
                }
            } else {
                try Schema.migrator.migrate(queue)
            }
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError(.io, "cannot open the ledger \(path): \(error)", cause: error)
        }
    }

    /// Creates the folder a ledger (and its lock) will live in.
    package static func makeFolder(for path: String) throws(AuditError) {
        let folder = (path as NSString).deletingLastPathComponent
        guard !folder.isEmpty else { return }
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw AuditError(.io, "cannot create the ledger's folder \(folder): \(error.localizedDescription)", cause: error)
        }
    }

    /// Runs `body` against the database, turning SQLite failures into I/O errors that name the ledger.
    func access<T>(_ body: (Database) throws -> T) throws(AuditError) -> T {
        do {
            return try queue.inDatabase(body)
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError(.io, "ledger \(path): \(error)", cause: error)
        }
    }

    /// Frees SQLite's page cache, such as the ingest's: the evaluation after it reads each scan block once.
    package func releaseMemory() { queue.releaseMemory() }

    /// Runs `body` in one read transaction, so that all its accesses see the ledger as the first of them found it: a
    /// report built and written while an audit replaces the month's figures shows the old ones or the new, never both.
    public func snapshot<T>(_ body: () throws(AuditError) -> T) throws(AuditError) -> T {
        try access { db in try db.execute(sql: "BEGIN DEFERRED") }
        defer { try? access { db in try db.execute(sql: "COMMIT") } }
        return try body()
    }

    /// Runs `body` in one write transaction that is rolled back whatever happens: a replay's evaluation (`tally audit
    /// --as-of` in the past without `--apply`) sees its own writes and leaves none. Writes inside are savepoints of it.
    package func rehearse<T>(_ body: () throws(AuditError) -> T) throws(AuditError) -> T {
        try access { db in try db.execute(sql: "BEGIN IMMEDIATE") }
        defer { try? access { db in try db.execute(sql: "ROLLBACK") } }
        return try body()
    }

    /// SQLite's page cache per connection, in KiB: the ingest and the reports come back to the same pages.
    package static let pageCacheKiB = 32 * 1024

    /// Runs `body` with the page cache held to 2 MiB, for a read that passes over each page once (the waste scan's
    /// blocks): a bigger cache would only hold memory while the scan needs it for its tables.
    static func withSmallPageCache<T>(_ db: Database, _ body: () throws -> T) throws -> T {
        try db.execute(sql: "PRAGMA cache_size = -2048")
        defer { try? db.execute(sql: "PRAGMA cache_size = -\(pageCacheKiB)") }
        return try body()
    }

    /// A value from the `meta` table.
    func meta(_ key: String, _ db: Database) throws -> String? {
        try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
    }

    func setMeta(_ key: String, _ value: String, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            arguments: [key, value])
    }
}
