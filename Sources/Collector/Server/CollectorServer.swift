import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import HummingbirdCore
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

        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.decompression = .disabled
        clientConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
        clientConfiguration.timeout.connect = .milliseconds(c.upstreamConnectTimeoutMs)
        clientConfiguration.timeout.read = .milliseconds(c.upstreamReadTimeoutMs)
        let httpClient = UpstreamClients(group: .singleton, configuration: clientConfiguration)

        let metrics = CollectorMetrics(configuredModels: Set(config.pricing.models.map(\.model)))
        let keys = KeyState(keys: config.keys)
        let queue = EventQueue(capacity: c.logQueueSize)
        let inFlight = InFlightCalls { event in
            metrics.record(event)
            queue.send(event)
        }
        let proxy = Proxy(
            config: config, keys: keys, httpClient: httpClient, queue: queue, metrics: metrics,
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

        let downloads = ReportDownloads(config: config, environment: environment)
        let responder = CallbackResponder<CollectorRequestContext> { request, context in
            if request.uri.path == "/reports" || request.uri.path.hasPrefix("/reports/") {
                return try await offLoop { try await downloads.respond(to: request, context: context) }
            }
            switch (request.method, request.uri.path) {
            case (.get, "/healthz"):
                return text("ok\n")
            case (.get, "/readyz"):
                if let problem = queue.writerProblem {
                    return text(
                        "not ready: the usage log cannot be written (\(problem)); new calls wait for room in its queue and are refused with 503 past log_queue_wait\n",
                        status: .serviceUnavailable)
                }
                let readiness = keys.readiness
                return text(readiness.detail + "\n", status: readiness.ready ? .ok : .serviceUnavailable)
            case (.get, "/metrics"):
                return text(
                    metrics.render(queueDepth: queue.depth, reservedSlots: queue.reservedSlots), contentType: "text/plain; version=0.0.4")
            default:
                return try await proxy.respond(to: request, context: context)
            }
        }
        let groupBox = GroupBox()
        let app = Application(
            responder: responder,
            server: .loopAffineHTTP1(
                configuration: HTTP1Channel.Configuration(
                    additionalChannelHandlers: [ClientConnectionHandler(timeout: .milliseconds(c.requestReadTimeoutMs))],
                    idleTimeout: .milliseconds(c.clientIdleTimeoutMs))),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                logger.info("collector listening", metadata: ["collector.id": "\(c.id)", "collector.address": "\(host):\(bound)"])
                if let group = groupBox.group { await onRunning?(RunningCollector(port: bound, group: group)) }
            },
            logger: logger
        )
        // Graceful shutdown runs in reverse order: the server stops first, then the watcher, and the writer drains last.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [
                .init(service: writer),
                .init(service: watcher),
                .init(service: InFlightService(inner: app, inFlight: inFlight, cutOffAfter: cutOffDelay(gracePeriod: gracePeriod))),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger
        )
        groupConfiguration.maximumGracefulShutdownDuration = gracePeriod
        let group = ServiceGroup(configuration: groupConfiguration)
        groupBox.group = group
        do {
            try await group.run()
        } catch {
            await httpClient.shutdown()
            throw error
        }
        await httpClient.shutdown()
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

    static func text(_ body: String, status: HTTPResponse.Status = .ok, contentType: String = "text/plain; charset=utf-8") -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}

/// The HTTP server, with what keeps every call it forwards logged: the reaper for calls drained past their deadline,
/// and, when a shutdown begins, a cut-off shortly before the grace period ends for the calls still running.
struct InFlightService<Inner: Service>: Service {
    let inner: Inner
    let inFlight: InFlightCalls
    let cutOffAfter: Duration

    func run() async throws {
        let inFlight = self.inFlight
        let cutOffAfter = self.cutOffAfter
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await inFlight.runReaper() }
            try await withGracefulShutdownHandler {
                try await inner.run()
            } onGracefulShutdown: {
                Task {
                    try? await Task.sleep(for: cutOffAfter)
                    inFlight.cutOffAll()
                }
            }
            group.cancelAll()
        }
    }
}

/// Hummingbird's request context with the client's channel, so that a call that waited for a log slot can tell whether
/// its client is still there.
struct CollectorRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
