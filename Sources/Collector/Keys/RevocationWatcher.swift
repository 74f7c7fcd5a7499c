import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TallyConfig
import TallyCore
import UnixSignals
import UsageLog

/// Reloads the revocation list when its file changes (checked every `interval`), and on SIGHUP the list and the config's
/// keys (`reloadKeys`: a config that no longer loads keeps the keys in force, logged and counted). The list fails closed
/// (`docs/revocations.md`):
///
/// - Each list loaded is also kept as the collector's own last good copy (`lastGoodPath`, in its log folder).
/// - A file that cannot be read, does not parse or fails its checksum is refused: the list in force stays, or at start
///   the last good copy is put in force; with neither, calls with Tally keys are refused with 503 until a good list
///   appears (`KeyState.markUnavailable`). Every refusal is logged and counted.
/// - Any failure to look at the file other than "no such file" (permissions, I/O) is such a failure: it never lifts
///   revocations.
/// - No such file: a new installation (no list ever, no last good copy) revokes nothing, logged once. A list that
///   existed and is gone keeps the list in force (at start: the last good copy); only a list saying so lifts a
///   revocation.
public struct RevocationWatcher: Service {
    let path: String
    let lastGoodPath: String
    let interval: Duration
    let keys: KeyState
    let metrics: CollectorMetrics
    let logger: Logger
    /// Reads the config's keys again (SIGHUP), or says why it cannot.
    let reloadKeys: (@Sendable () -> Result<[Key], KeysReloadError>)?

    public struct KeysReloadError: Error {
        public var message: String
        public init(_ message: String) { self.message = message }
    }

    public init(
        path: String, lastGoodPath: String, interval: Duration, keys: KeyState, metrics: CollectorMetrics, logger: Logger,
        reloadKeys: (@Sendable () -> Result<[Key], KeysReloadError>)? = nil
    ) {
        self.reloadKeys = reloadKeys
        self.path = path
        self.lastGoodPath = lastGoodPath
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

    /// What `stat` says of a path.
    enum Look: Equatable {
        case present(Stamp)
        case missing
        /// Any other failure, with its errno.
        case failed(Int32)
    }

    static func look(_ path: String) -> Look {
        var info = stat()
        guard stat(path, &info) == 0 else { return errno == ENOENT ? .missing : .failed(errno) }
        return .present(
            Stamp(
                size: Int64(info.st_size), modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
                inode: UInt64(info.st_ino)))
    }

    /// Looks at the file now and puts in force what it should; returns the stamp of the file the list in force came
    /// from (nil when none), so that an unchanged file is not read again.
    @discardableResult
    func reload(previous: Stamp?, force: Bool) -> Stamp? {
        switch Self.look(path) {
        case .failed(let code):
            refused("cannot look at the revocation list: \(String(cString: strerror(code)))")
            return previous
        case .missing:
            if keys.hasList {
                if previous != nil {
                    refused("the revocation list is gone; the list in force stays until a list says otherwise")
                }
                return nil
            }
            if let lastGood = readLastGood() {
                install(lastGood, note: "the revocation list file is missing; serving the last good copy", save: false)
            } else {
                logger.info(
                    "no revocation list yet (a new installation); no key is revoked", metadata: ["collector.revocations": "\(path)"])
                keys.install(RevocationList())
                metrics.revokedKeys.store(0, ordering: .relaxed)
            }
            return nil
        case .present(let current):
            // A file is read again only when it changed (or on SIGHUP): a refused one is refused once.
            if !force, current == previous { return current }
            do {
                let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
                install(try RevocationList(parsing: bytes), note: nil, save: true)
                metrics.reloads.add(1, ordering: .relaxed)
            } catch {
                refused("the revocation list was refused (\(error))")
            }
            return current
        }
    }

    /// A failure to take the file: counted and logged; the list in force stays, or at start the last good copy is put
    /// in force, or, with neither, calls with Tally keys are refused.
    private func refused(_ reason: String) {
        metrics.reloadFailures.add(1, ordering: .relaxed)
        if keys.hasList {
            logger.error("\(reason); the list in force stays", metadata: ["collector.revocations": "\(path)"])
        } else if let lastGood = readLastGood() {
            logger.error("\(reason); serving the last good copy", metadata: ["collector.revocations": "\(path)"])
            install(lastGood, note: "\(reason); serving the last good copy", save: false)
        } else {
            logger.error(
                "\(reason), and there is no last good copy: calls with Tally keys are refused until a good list appears",
                metadata: ["collector.revocations": "\(path)"])
            keys.markUnavailable(reason: reason)
        }
    }

    private func install(_ list: RevocationList, note: String?, save: Bool) {
        keys.install(list, note: note)
        metrics.revokedKeys.store(list.entries.count, ordering: .relaxed)
        logger.info(
            note == nil ? "revocation list loaded" : "last good revocation list loaded",
            metadata: ["collector.revocations": "\(path)", "collector.revoked_keys": "\(list.entries.count)"])
        guard save else { return }
        do {
            try AtomicFile.write(list.rendered(), to: lastGoodPath)
        } catch {
            logger.error("cannot keep the last good copy of the revocation list", metadata: ["error": "\(error)"])
        }
    }

    /// The last good copy, when there is one that verifies.
    private func readLastGood() -> RevocationList? {
        guard let data = FileManager.default.contents(atPath: lastGoodPath) else { return nil }
        do {
            return try RevocationList(parsing: Array(data))
        } catch {
            logger.error("the last good copy of the revocation list does not verify", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Puts the config's keys in force again (SIGHUP): `tally keys new` says to reload, not to restart.
    func reloadConfiguredKeys() {
        guard let reloadKeys else { return }
        switch reloadKeys() {
        case .success(let configured):
            keys.replaceKeys(configured)
            logger.info("config keys reloaded", metadata: ["collector.keys": "\(configured.count)"])
        case .failure(let error):
            metrics.configReloadFailures.add(1, ordering: .relaxed)
            logger.error(
                "config not reloaded: the keys in force stay",
                metadata: ["error": "\(error.message)", "collector.keys": "\(keys.keyCount)"])
        }
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
                    if force { reloadConfiguredKeys() }
                    stamp = reload(previous: stamp, force: force)
                }
            } onGracefulShutdown: {
                checkContinuation.finish()
            }
            group.cancelAll()
        }
    }
}
