import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TallyConfig
import TallyCore
import UsageLog

/// The one task that owns the active log segment: it takes batches from the `EventQueue`, appends and commits them,
/// rotates by size and age, and hands closed segments to a side task for compression so writes never wait on gzip.
/// On graceful shutdown it drains the queue, closes the segment and finishes every compression.
///
/// A batch's slots in the queue are freed only once it is written and committed, so a log that cannot be written
/// stops new calls (`EventQueue`), and the queue says why meanwhile (`/readyz`). A segment that fails to compress is
/// tried again every `compressRetryInterval`; until then the audit reads it as a closed plain segment.
public struct LogWriterService: Service {
    let queue: EventQueue
    let logDirectory: String
    let collectorID: String
    let options: SegmentWriterOptions
    let metrics: CollectorMetrics
    let logger: Logger

    public init(
        queue: EventQueue, logDirectory: String, collectorID: String, options: SegmentWriterOptions,
        metrics: CollectorMetrics, logger: Logger
    ) {
        self.queue = queue
        self.logDirectory = logDirectory
        self.collectorID = collectorID
        var options = options
        options.compressOnClose = false
        self.options = options
        self.metrics = metrics
        self.logger = logger
    }

    /// Segment options from the config's `collector:` section.
    public static func options(from settings: CollectorSettings) -> SegmentWriterOptions {
        var options = SegmentWriterOptions()
        options.maxBytes = settings.segmentMaxBytes
        options.maxAgeMilliseconds = settings.segmentMaxAgeMs
        switch settings.fsync {
        case .always: options.fsync = .always
        case .interval: options.fsync = .interval(milliseconds: settings.fsyncIntervalMs)
        case .never: options.fsync = .never
        }
        return options
    }

    public func run() async throws {
        // Opening the folder (and its lock) before the server accepts anything makes a second collector with the same id fail fast.
        let writer = try SegmentWriter(logDirectory: logDirectory, collector: collectorID, options: options)
        let (closedSegments, closedContinuation) = AsyncStream.makeStream(of: String.self)
        let queue = self.queue
        let tickMs = min(250, max(10, options.maxAgeMilliseconds / 4))

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [logger, options] in
                    // An empty path is the retry timer: the segments that failed before are tried again.
                    var compressions = PendingCompressions(level: options.gzipLevel, logger: logger)
                    for await path in closedSegments { compressions.compress(path.isEmpty ? nil : path) }
                }
                group.addTask {
                    var sinceRetry = Duration.zero
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(tickMs))
                        queue.wakeWriter()
                        sinceRetry += .milliseconds(tickMs)
                        if sinceRetry >= Self.compressRetryInterval {
                            sinceRetry = .zero
                            closedContinuation.yield("")
                        }
                    }
                }
                while let batch = await queue.nextBatch() {
                    await write(batch, to: writer)
                    queue.written(batch.count)
                    for path in writer.takeClosedSegments() { closedContinuation.yield(path) }
                    // A small batch means calls are arriving one by one: waiting a moment lets more gather, so that
                    // the event loops do not wake this task (a thread) for every call. The calls do not wait for it.
                    if batch.count < Self.smallBatch, !queue.isClosed { try? await Task.sleep(for: Self.gatherDelay) }
                }
                await retrying("close the active segment", giveUpAfter: 30) { try writer.close() }
                for path in writer.takeClosedSegments() { closedContinuation.yield(path) }
                closedContinuation.finish()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            queue.close()
        }
    }

    /// Below this many events a batch is small, and the writer waits `gatherDelay` before taking the next.
    ///
    /// Each wake-up of the writer costs a thread switch and a write, and on a busy host it takes a core away from an
    /// event loop mid-call; a long gather makes each batch a longer burst of work instead. At 16 connections (about
    /// 10,000 calls a second) the writer's threads used 8–9 µs per call waiting 2 ms for up to 32 events, 10–13.5
    /// waiting 1 ms, 5–10 waiting 3 ms and 3–6 waiting 10 ms. At one connection, the 10 ms bursts (some 80 lines)
    /// showed in the calls' p99: 0.42–1.40 ms against 0.22–0.37 ms with 3 ms, in four pairs of 8 s runs (wrk, chat,
    /// the bench's mock). A line reaches its segment at most this much later; calls never wait for it.
    static let smallBatch = 256
    static let gatherDelay = Duration.milliseconds(3)

    /// How often segments that failed to compress are tried again.
    static let compressRetryInterval = Duration.seconds(30)

    /// Appends and commits a batch. A failing disk is retried without end, never skipped (new calls wait for queue
    /// room meanwhile); each attempt resumes at the first event not yet appended, and the segment writer resumes a
    /// write at the first byte not yet written.
    private func write(_ batch: [UsageEvent], to writer: SegmentWriter) async {
        var next = 0
        await retrying("write the usage log") {
            let now = Timestamp.now()
            while next < batch.count {
                try writer.append(batch[next], now: now)
                next += 1
            }
        }
        await retrying("commit the usage log") { try writer.tick(now: Timestamp.now()) }
    }

    /// Runs `body` until it succeeds, logging and counting each failure, saying so to the queue (for `/readyz` and the
    /// refusals) and pausing a second between attempts. Only a cancelled task (a shutdown past its grace) stops
    /// trying.
    private func retrying(_ what: String, giveUpAfter limit: Int? = nil, _ body: () throws -> Void) async {
        for attempt in 1... {
            do {
                try body()
                if attempt > 1 {
                    queue.writerFailed(nil)
                    logger.notice("the usage log is written again", metadata: ["attempts": "\(attempt)"])
                }
                return
            } catch {
                logger.error("cannot \(what); retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                metrics.logWriteErrors.add(1, ordering: .relaxed)
                queue.writerFailed("cannot \(what): \(error)")
                if let limit, attempt >= limit { return }
                if Task.isCancelled { return }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// Closed segments on their way to gzip. One that fails (a full disk) keeps its plain file, which the audit reads as a
/// closed segment meanwhile, and is tried again with the next.
struct PendingCompressions {
    let level: Int32
    let logger: Logger
    /// Plain segments that could not be compressed yet.
    private(set) var failed: [String] = []

    init(level: Int32, logger: Logger) {
        self.level = level
        self.logger = logger
    }

    /// Compresses `closed` (when given) and every segment that failed before.
    mutating func compress(_ closed: String?) {
        if let closed { failed.append(closed) }
        failed = failed.filter { path in
            do {
                try SegmentWriter.compress(path, level: level)
                return false
            } catch {
                logger.error(
                    "could not compress a closed segment; retrying later", metadata: ["collector.segment": "\(path)", "error": "\(error)"])
                return true
            }
        }
    }
}
