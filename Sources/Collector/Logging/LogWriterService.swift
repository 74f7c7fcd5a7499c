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
                    for await path in closedSegments {
                        do {
                            try SegmentWriter.compress(path, level: options.gzipLevel)
                        } catch {
                            // The plain file stays; the next writer start gzips it, and `audit --include-open` reads it.
                            logger.error(
                                "could not compress a closed segment", metadata: ["collector.segment": "\(path)", "error": "\(error)"])
                        }
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(tickMs))
                        queue.wakeWriter()
                    }
                }
                while let batch = await queue.nextBatch() {
                    metrics.queueDepth.store(queue.depth, ordering: .relaxed)
                    await write(batch, to: writer)
                    for path in writer.takeClosedSegments() { closedContinuation.yield(path) }
                }
                await retrying("close the active segment") { try writer.close() }
                for path in writer.takeClosedSegments() { closedContinuation.yield(path) }
                closedContinuation.finish()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            queue.close()
        }
    }

    /// Appends and commits a batch. A failing disk is retried without end, never skipped (handlers wait meanwhile);
    /// each attempt resumes at the first event not yet appended.
    private func write(_ batch: [UsageEvent], to writer: SegmentWriter) async {
        var next = 0
        await retrying("write the usage log", giveUpAfter: nil) {
            let now = Timestamp.now()
            while next < batch.count {
                try writer.append(batch[next], now: now)
                next += 1
            }
        }
        await retrying("commit the usage log") { try writer.tick(now: Timestamp.now()) }
    }

    /// Runs `body` until it succeeds, logging and counting each failure and pausing a second between attempts;
    /// with a limit, gives up after that many attempts.
    private func retrying(_ what: String, giveUpAfter limit: Int? = 30, _ body: () throws -> Void) async {
        for attempt in 1... {
            do {
                try body()
                return
            } catch {
                logger.error("cannot \(what); retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                metrics.logWriteErrors.add(1, ordering: .relaxed)
                if let limit, attempt >= limit { return }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
