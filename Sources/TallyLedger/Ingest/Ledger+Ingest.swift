import GRDB
import TallyCore

/// What an earlier run read of a segment, by its path relative to the log directory.
package struct IngestedSegment: Sendable {
    package var size: Int64
    package var mtime: Int64
    /// Where the next read of an open segment starts.
    package var offset: Int64
    /// Lines read so far.
    package var lines: Int
}

extension Ledger {
    /// Days in the rollups follow the audit's timezone: a ledger that counted them in another zone has its rollups
    /// rebuilt with `day` (milliseconds to the local day), then keeps `zone`.
    package func useTimezone(_ zone: String, day: (Int64) -> Int) throws(AuditError) {
        try access { db in
            try db.inTransaction(.immediate) {
                let stored = try meta("timezone", db)
                if stored != zone {
                    if stored != nil { try Rollups.rebuild(day: day, db) }
                    try setMeta("timezone", zone, db)
                }
                return .commit
            }
        }
    }

    /// Starts the record of one ingest run; returns its id.
    package func beginRun(startedAt: Int64, asOf: Int64) throws(AuditError) -> Int64 {
        try access { db in
            try db.execute(sql: "INSERT INTO runs (started_at, as_of) VALUES (?, ?)", arguments: [startedAt, asOf])
            return db.lastInsertedRowID
        }
    }

    /// What earlier runs read, by path relative to the log directory.
    package func ingestedSegments() throws(AuditError) -> [String: IngestedSegment] {
        try access { db in
            var known: [String: IngestedSegment] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT path, size, mtime, offset, lines FROM segments")
            while let row = try rows.next() { known[row[0]] = IngestedSegment(size: row[1], mtime: row[2], offset: row[3], lines: row[4]) }
            return known
        }
    }

    /// A writer for run `runID`, holding the ledger's dimension, attribution and price ids.
    package func ingestWriter(currency: String, runID: Int64) throws(AuditError) -> IngestWriter {
        try access { db in try IngestWriter(currency: currency, runID: runID, db: db) }
    }

    /// Adds a parsed segment to the writer's open batch, and commits the batch once it holds
    /// `IngestWriter.batchEvents` events.
    package func store(_ parsed: ParsedSegment, with writer: inout IngestWriter) throws(AuditError) {
        try access { db in
            try writer.write(parsed, db)
            if writer.pendingEvents >= IngestWriter.batchEvents { try writer.commit(db) }
        }
    }

    /// Commits what the writer still holds.
    package func commit(_ writer: inout IngestWriter) throws(AuditError) {
        try access { db in try writer.commit(db) }
    }

    /// Closes the record of run `id` with what it did.
    package func finishRun(id: Int64, finishedAt: Int64, totals: IngestTotals) throws(AuditError) {
        try access { db in
            try db.execute(
                sql: """
                    UPDATE runs SET finished_at = ?, segments = ?, events = ?, duplicates = ?, quarantined = ?, unpriced = ?, damaged = ?
                    WHERE id = ?
                    """,
                arguments: [
                    finishedAt, totals.segmentsRead, totals.events, totals.duplicates,
                    totals.quarantined, totals.unpriced, totals.damaged.count, id,
                ])
        }
    }
}
