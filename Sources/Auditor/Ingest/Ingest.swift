import Foundation
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
            throw AuditError(
                .io, "cannot list the log directory \(logDir) (collector.log_dir in the config): \(error.message)", cause: error)
        }
        let calendar = try LocalCalendar.audit(config)

        // Days in the rollups follow the configured timezone; a new timezone recounts them.
        var days = calendar
        try ledger.useTimezone(config.audit.timezone) { days.day(of: $0) }
        let runID = try ledger.beginRun(startedAt: Timestamp.now(), asOf: options.asOf)
        // What earlier runs read, by path relative to the log directory.
        let known = try ledger.ingestedSegments()

        var totals = IngestTotals()
        var failures: [String] = []
        var jobs: [SegmentJob] = []
        // A plain segment with a newer segment beside it is closed, only not compressed yet (its gzip failed, or is
        // under way): its calls count now, not after the collector manages to compress it. Only the newest may still be
        // written to.
        var newest: [String: SegmentFile] = [:]
        for file in files where newest[file.collector].map({ $0 < file }) ?? true { newest[file.collector] = file }
        for file in files {
            let relative = file.collector + "/" + String(file.path.split(separator: "/").last!)
            let mayBeOpen = !file.isClosed && newest[file.collector]?.stem == file.stem
            if file.openedAt * 1000 > options.asOf || (mayBeOpen && !options.includeOpen) {
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
                    if seen.size == size && seen.mtime == mtime {
                        totals.segmentsUnchanged += 1
                        continue
                    }
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
        var writer = try ledger.ingestWriter(currency: config.currency, runID: runID)
        writer.totals = totals

        do {
            try await withThrowingTaskGroup(of: (SegmentJob, Result<ParsedSegment, FileIOError>).self) { group in
                var next = 0
                func launch() {
                    guard next < jobs.count else { return }
                    let job = jobs[next]
                    next += 1
                    group.addTask {
                        (
                            job,
                            Result { () throws(FileIOError) in
                                var parsed = try ParsedSegment.parse(job)
                                parsed.prepare(config: config, prices: prices, calendar: calendar)
                                return parsed
                            }
                        )
                    }
                }
                for _ in 0..<options.parallelism { launch() }
                while let (job, outcome) = try await group.next() {
                    launch()
                    switch outcome {
                    case .success(let parsed):
                        if !parsed.vanished { try ledger.store(parsed, with: &writer) }
                    case .failure(let error):
                        failures.append(error.message)
                    }
                    done += 1
                    bytesDone += job.size - job.offset
                    progress(
                        IngestProgress(
                            segmentsDone: done, segmentsTotal: jobs.count, bytesDone: bytesDone,
                            bytesTotal: bytesTotal, events: writer.totals.events))
                }
                try ledger.commit(&writer)
            }
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError(.io, "ingest failed: \(error)", cause: error)
        }

        totals = writer.totals
        let seconds = (ContinuousClock.now - started).seconds
        try ledger.finishRun(id: runID, finishedAt: Timestamp.now(), totals: totals)
        return IngestResult(totals: totals, failures: failures, seconds: seconds)
    }
}
