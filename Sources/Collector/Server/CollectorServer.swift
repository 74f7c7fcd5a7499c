import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import TallyConfig
import TallyCore
import UnixSignals
import UsageLog

/// Why the collector cannot start.
public struct CollectorError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A running collector, as `onRunning` sees it.
public struct RunningCollector: Sendable {
    /// The port the server listens on.
    public let port: Int
    let group: ServiceGroup

    /// Stops the collector as SIGTERM would: no new connections, calls in flight finish, the log is drained.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
    }
}

/// `tally collect`: the proxy server with its log writer and revocation watcher, shut down gracefully on SIGTERM/SIGINT.
public enum CollectorServer {
    /// Runs until SIGTERM or SIGINT (or cancellation): stops accepting, lets calls in flight finish (at most
    /// `gracePeriod`), drains the log queue and closes the active segment.
    ///
    /// - Parameter onRunning: called once the server listens, with its port (port 0 in `listen` picks a free one)
    ///   and a way to stop it.
    /// - Parameter configPath: the file `config` was read from, for SIGHUP to read its keys again.
    public static func run(
        config: Config, configPath: String? = nil, environment: [String: String], logger: Logger, gracePeriod: Duration = .seconds(30),
        onRunning: (@Sendable (RunningCollector) async -> Void)? = nil
    ) async throws {
        let c = config.collector
        guard let secret = environment[c.hashSecretEnv], !secret.isEmpty else {
            throw CollectorError(
                "\(c.hashSecretEnv) is not set: the collector hashes prompts with a secret from it. Set it to a long random string, the same on every collector (for example: export \(c.hashSecretEnv)=$(head -c 32 /dev/urandom | base64))"
            )
        }
        guard !config.providers.isEmpty else { throw CollectorError("the config has no providers: there is nowhere to forward to") }
        var providerKeys: [String: String] = [:]
        for provider in config.providers {
            if let key = environment[provider.apiKeyEnv], !key.isEmpty {
                // The key becomes a header value: a line break in it would split the request.
                guard !key.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
                    throw CollectorError("\(provider.apiKeyEnv) holds a control character (a line break?); a provider key cannot")
                }
                providerKeys[provider.name] = key
            } else {
                logger.warning(
                    "provider key not set; calls to this provider will get 502",
                    metadata: ["collector.provider": "\(provider.name)", "collector.env": "\(provider.apiKeyEnv)"])
            }
        }
        guard let (host, port) = listenAddress(c.listen) else { throw CollectorError("collector.listen '\(c.listen)' is not host:port") }
        let redactor: Redactor
        do {
            redactor = try Redactor(extraPatterns: c.redact)
        } catch {
            throw CollectorError("a collector.redact pattern does not compile: \(error)")
        }

        // Take the log folder (and finish what a crash left in it) before listening, so a second collector with the
        // same id fails here instead of after accepting calls. The writer service opens it again for good.
        let logDirectory = config.resolve(c.logDir)
        let segmentOptions = LogWriterService.options(from: c)
        do {
            let probe = try SegmentWriter(logDirectory: logDirectory, collector: c.id, options: segmentOptions)
            withExtendedLifetime(probe) {}
        }

        // Where each provider's calls go, and TLS for the https ones (a CA file that cannot be read stops the start).
        var targets: [String: UpstreamTarget] = [:]
        for provider in config.providers {
            guard let target = UpstreamTarget(provider: provider, config: config) else {
                throw CollectorError("provider \(provider.name): base_url \(provider.baseURL) is not an http:// or https:// URL")
            }
            targets[provider.name] = target
        }
        let upstreamSettings = try UpstreamSettings(collector: c, origins: targets.values.map(\.origin))

        let metrics = CollectorMetrics(configuredModels: Set(config.pricing.models.map(\.model)))
        let keys = KeyState(keys: config.keys)
        let queue = EventQueue(capacity: c.logQueueSize)
        let inFlight = InFlightCalls { event in
            metrics.record(event)
            queue.send(event)
        }
        let proxy = Proxy(
            config: config, keys: keys, targets: targets, queue: queue, metrics: metrics,
            hasher: PromptHasher(secret: Array(secret.utf8)), redactor: redactor, providerKeys: providerKeys,
            logger: logger, inFlight: inFlight)
        let writer = LogWriterService(
            queue: queue, logDirectory: logDirectory, collectorID: c.id,
            options: segmentOptions, metrics: metrics, logger: logger)
        let watcher = RevocationWatcher(
            path: config.resolve(c.revocations), lastGoodPath: logDirectory + "/" + c.id + "/.revoked.last-good.tsv",
            interval: .milliseconds(c.reloadIntervalMs), keys: keys, metrics: metrics, logger: logger,
            reloadKeys: configPath.map(Self.keysReader))
        // The list is in force (or known to be unusable) before the first call is accepted.
        watcher.reload(previous: nil, force: true)

        let admin = AdminPages(
            queue: queue, keys: keys, metrics: metrics, downloads: ReportDownloads(config: config, environment: environment))
        let groupBox = GroupBox()
        let server = ProxyServer(
            host: host, port: port, proxy: proxy, admin: admin, upstream: upstreamSettings,
            idleTimeout: .milliseconds(c.clientIdleTimeoutMs), readTimeout: .milliseconds(c.requestReadTimeoutMs),
            cutOffAfter: cutOffDelay(gracePeriod: gracePeriod), logger: logger,
            onRunning: { bound in
                logger.info("collector listening", metadata: ["collector.id": "\(c.id)", "collector.address": "\(host):\(bound)"])
                if let group = groupBox.group { await onRunning?(RunningCollector(port: bound, group: group)) }
            })
        // Graceful shutdown runs in reverse order: the server stops first, then the watcher, and the writer drains last.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: writer), .init(service: watcher), .init(service: server)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger
        )
        groupConfiguration.maximumGracefulShutdownDuration = gracePeriod
        let group = ServiceGroup(configuration: groupConfiguration)
        groupBox.group = group
        try await group.run()
        logger.info("collector stopped", metadata: ["collector.id": "\(c.id)"])
    }

    /// Reads the keys of the config at `path` again, for SIGHUP.
    static func keysReader(path: String) -> @Sendable () -> Result<[Key], RevocationWatcher.KeysReloadError> {
        {
            do { return .success(try Config.load(path: path).keys) } catch {
                return .failure(RevocationWatcher.KeysReloadError("\(error)"))
            }
        }
    }

    /// When, after a shutdown begins, the calls still running are logged as cut off: shortly before the grace period
    /// ends (2 s, or a fifth of a short grace), so that the log writer writes their lines before everything stops.
    static func cutOffDelay(gracePeriod: Duration) -> Duration {
        let margin = min(.seconds(2), gracePeriod / 5)
        return gracePeriod - margin
    }

    /// Lets the server's start callback reach the group that runs it (set before the group starts).
    final class GroupBox: Sendable {
        private let stored = Mutex<ServiceGroup?>(nil)
        var group: ServiceGroup? {
            get { stored.withLock { $0 } }
            set { stored.withLock { $0 = newValue } }
        }
    }

    static func listenAddress(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

}
