#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import GRDB
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// How far an ingest has got, for a progress bar.
public struct IngestProgress: Sendable {
    public var segmentsDone: Int
    public var segmentsTotal: Int
    /// File bytes of the segments done and of all segments to read.
    public var bytesDone: Int64
    public var bytesTotal: Int64
    public var events: Int
}

/// What one ingest did.
public struct IngestResult: Sendable {
    public var totals: IngestTotals
    /// Segments that could not be read (the message names the file); the run went on without them.
    public var failures: [String]
    public var seconds: Double
}

/// Brings every segment under the log directory into the ledger, exactly once.
///
/// Closed segments are read whole, once (again only if their size or time changes); open ones, with `includeOpen`,
/// from where the last run stopped. Event ids make re-reads harmless: an id already in the ledger is a duplicate and
/// counts once. Segments are parsed in parallel and written by one writer in batches of whole segments, one
/// transaction each, so a killed run leaves the ledger at its last committed batch.
public enum Ingest {
    public struct Options: Sendable {
        /// Also read the complete lines of segments still being written.
        public var includeOpen = false
        /// The audit's clock: segments opened after it are left for a later run.
        public var asOf: Int64
        /// Segments being parsed or waiting for the writer: one more than the cores, so that no core idles while the
        /// writer works; memory stays bounded by this many parsed segments (about 130 bytes an event).
        public var parallelism = ProcessInfo.processInfo.activeProcessorCount + 1

        public init(includeOpen: Bool = false, asOf: Int64) {
            self.includeOpen = includeOpen
            self.asOf = asOf
        }
    }

    public static func run(
        ledger: Ledger, config: Config, prices: PriceBook, options: Options,
        progress: (IngestProgress) -> Void = { _ in }
    ) async throws(AuditError) -> IngestResult {
        let started = ContinuousClock.now
        let logDir = config.resolve(config.collector.logDir)
        let files: [SegmentFile]
        do { files = try LogDirectory.segments(root: logDir) } catch {
            throw AuditError(.io, "cannot list the log directory \(logDir) (collector.log_dir in the config): \(error.message)", cause: error)
        }
        let calendar = try LocalCalendar.audit(config)

        // What earlier runs read, by path relative to the log directory.
        struct Known { var size: Int64; var mtime: Int64; var offset: Int64; var lines: Int }
        let (runID, known) = try ledger.access { db -> (Int64, [String: Known]) in
            try db.inTransaction(.immediate) {
                // Days in the rollups follow the configured timezone; a new timezone recounts them.
                let zone = try ledger.meta("timezone", db)
                if zone != config.audit.timezone {
                    if zone != nil {
                        var days = calendar
                        try Rollups.rebuild(day: { days.day(of: $0) }, db)
                    }
                    try ledger.setMeta("timezone", config.audit.timezone, db)
                }
                return .commit
            }
            try db.execute(sql: "INSERT INTO runs (started_at, as_of) VALUES (?, ?)", arguments: [Timestamp.now(), options.asOf])
            let runID = db.lastInsertedRowID
            var known: [String: Known] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT path, size, mtime, offset, lines FROM segments")
            while let row = try rows.next() { known[row[0]] = Known(size: row[1], mtime: row[2], offset: row[3], lines: row[4]) }
            return (runID, known)
        }

        var totals = IngestTotals()
        var failures: [String] = []
        var jobs: [SegmentJob] = []
        for file in files {
            let relative = file.collector + "/" + String(file.path.split(separator: "/").last!)
            if file.openedAt * 1000 > options.asOf || (!file.isClosed && !options.includeOpen) {
                totals.segmentsLeft += 1
                continue
            }
            var info = stat()
            guard stat(file.path, &info) == 0 else {
                if errno == ENOENT { continue }  // closed and renamed since the listing; the next run sees the new name
                failures.append("cannot stat \(file.path): \(String(cString: strerror(errno)))")
                continue
            }
            let size = Int64(info.st_size)
            let mtime = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
            var job = SegmentJob(file: file, relativePath: relative, size: size, mtime: mtime, offset: 0, firstLine: 1)
            if let seen = known[relative] {
                if file.isClosed {
                    if seen.size == size && seen.mtime == mtime { totals.segmentsUnchanged += 1; continue }
                } else if seen.offset == size {
                    totals.segmentsUnchanged += 1
                    continue
                } else if seen.offset < size {
                    job.offset = seen.offset
                    job.firstLine = seen.lines + 1
                }
            }
            jobs.append(job)
        }

        // Oldest first across collectors: ids (UUIDv7) and times then grow nearly in order, so the ledger's B-trees
        // are appended to rather than split all over.
        jobs.sort { ($0.file.openedAt, $0.file.collector, $0.file.sequence) < ($1.file.openedAt, $1.file.collector, $1.file.sequence) }
        let bytesTotal = jobs.reduce(Int64(0)) { $0 + $1.size - $1.offset }
        var bytesDone: Int64 = 0
        var done = 0
        var writer = try ledger.access { db in
            try IngestWriter(currency: config.currency, runID: runID, db: db)
        }
        writer.totals = totals

        do {
            try await withThrowingTaskGroup(of: (SegmentJob, Result<ParsedSegment, FileIOError>).self) { group in
                var next = 0
                func launch() {
                    guard next < jobs.count else { return }
                    let job = jobs[next]
                    next += 1
                    group.addTask {
                        (job, Result { () throws(FileIOError) in
                            var parsed = try ParsedSegment.parse(job)
                            parsed.prepare(config: config, prices: prices, calendar: calendar)
                            return parsed
                        })
                    }
                }
                for _ in 0..<options.parallelism { launch() }
                while let (job, outcome) = try await group.next() {
                    launch()
                    switch outcome {
                    case .success(let parsed):
                        if !parsed.vanished {
                            try ledger.access { db in
                                try writer.write(parsed, db)
                                if writer.pendingEvents >= IngestWriter.batchEvents { try writer.commit(db) }
                            }
                        }
                    case .failure(let error):
                        failures.append(error.message)
                    }
                    done += 1
                    bytesDone += job.size - job.offset
                    progress(IngestProgress(segmentsDone: done, segmentsTotal: jobs.count, bytesDone: bytesDone,
                                            bytesTotal: bytesTotal, events: writer.totals.events))
                }
                try ledger.access { db in try writer.commit(db) }
            }
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError(.io, "ingest failed: \(error)", cause: error)
        }

        totals = writer.totals
        let seconds = (ContinuousClock.now - started).seconds
        let finalTotals = totals
        try ledger.access { db in
            try db.execute(sql: """
                UPDATE runs SET finished_at = ?, segments = ?, events = ?, duplicates = ?, quarantined = ?, unpriced = ?, damaged = ?
                WHERE id = ?
                """, arguments: [Timestamp.now(), finalTotals.segmentsRead, finalTotals.events, finalTotals.duplicates,
                                 finalTotals.quarantined, finalTotals.unpriced, finalTotals.damaged.count, runID])
        }
        return IngestResult(totals: totals, failures: failures, seconds: seconds)
    }
}
