import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TallyCore
import UnixSignals
import UsageLog

/// Reloads the revocation list when its file changes (checked every `interval`) and on SIGHUP.
///
/// A file that does not parse, or whose checksum line does not match, is refused: the previous list stays in force,
/// the error is logged and counted. A missing file means no revocations.
public struct RevocationWatcher: Service {
    let path: String
    let interval: Duration
    let keys: KeyState
    let metrics: CollectorMetrics
    let logger: Logger

    public init(path: String, interval: Duration, keys: KeyState, metrics: CollectorMetrics, logger: Logger) {
        self.path = path
        self.interval = interval
        self.keys = keys
        self.metrics = metrics
        self.logger = logger
    }

    struct Stamp: Equatable {
        var size: Int64
        var modified: Int64
        var inode: UInt64
    }

    static func stamp(_ path: String) -> Stamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Stamp(
            size: Int64(info.st_size), modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
            inode: UInt64(info.st_ino))
    }

    /// Loads the file now; returns the stamp it saw.
    @discardableResult
    func reload(previous: Stamp?, force: Bool) -> Stamp? {
        let current = Self.stamp(path)
        if !force, current == previous, keys.isReady { return current }
        guard current != nil else {
            if !keys.isReady || previous != nil {
                logger.info("no revocation list; no key is revoked", metadata: ["collector.revocations": "\(path)"])
            }
            keys.install(RevocationList())
            metrics.revokedKeys.store(0, ordering: .relaxed)
            return nil
        }
        do {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            let list = try RevocationList(parsing: bytes)
            keys.install(list)
            metrics.reloads.add(1, ordering: .relaxed)
            metrics.revokedKeys.store(list.entries.count, ordering: .relaxed)
            logger.info(
                "revocation list loaded", metadata: ["collector.revocations": "\(path)", "collector.revoked_keys": "\(list.entries.count)"])
        } catch {
            metrics.reloadFailures.add(1, ordering: .relaxed)
            logger.error(
                "revocation list refused; the previous list stays in force",
                metadata: ["collector.revocations": "\(path)", "error": "\(error)"])
        }
        return current
    }

    public func run() async throws {
        var stamp = reload(previous: nil, force: true)
        let (checks, checkContinuation) = AsyncStream.makeStream(of: Bool.self)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) { checkContinuation.yield(true) }
            }
            group.addTask {
                // Cancellation ends the sleep early; the loop then stops.
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    checkContinuation.yield(false)
                }
            }
            // SIGHUP (true) forces a reload even if the file looks unchanged; the timer (false) reloads on change.
            _ = await withGracefulShutdownHandler {
                for await force in checks {
                    stamp = reload(previous: stamp, force: force)
                }
            } onGracefulShutdown: {
                checkContinuation.finish()
            }
            group.cancelAll()
        }
    }
}
