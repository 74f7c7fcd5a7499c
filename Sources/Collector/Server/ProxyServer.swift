import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The collector's listener: SwiftNIO's HTTP/1.1 codecs with a ``ClientHandler`` per connection, on the
/// shared event loops (one per core), each loop with its own ``UpstreamPool``.
///
/// On a graceful shutdown it stops accepting, lets every call in progress finish (idle connections close at once,
/// busy ones after their answer), and, if calls still run shortly before the grace period ends, logs them as cut off
/// and closes everything, so that the log writer, which stops after this service, writes their lines.
struct ProxyServer: Service {
    let host: String
    let port: Int
    let proxy: Proxy
    let admin: AdminPages
    let upstream: UpstreamSettings
    let idleTimeout: TimeAmount
    let readTimeout: TimeAmount
    let cutOffAfter: Duration
    let logger: Logger
    let onRunning: @Sendable (Int) async -> Void

    func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let loops = Array(group.makeIterator())
        // One pool per loop, made on its loop and used only there.
        var pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>] = [:]
        for loop in loops {
            let settings = upstream
            pools[ObjectIdentifier(loop)] = try await loop.submit {
                NIOLoopBound(UpstreamPool(loop: loop, settings: settings), eventLoop: loop)
            }
            .get()
        }
        let poolsByLoop = pools
        let connections = ClientConnections()
        let quiesce = ServerQuiescingHelper(group: group)
        let (proxy, admin, idleTimeout, readTimeout) = (self.proxy, self.admin, self.idleTimeout, self.readTimeout)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pool = poolsByLoop[ObjectIdentifier(channel.eventLoop)]!.value
                    let sync = channel.pipeline.syncOperations
                    // NIO's request decoder; answers are encoded by ClientHandler (`ClientAnswerEncoder`), which also
                    // does the work of NIO's pipelining and protocol-error handlers. Headers are not validated again on
                    // the way out: every header the collector writes was parsed by NIO's HTTP parser (the client's, the
                    // provider's) or checked at start (config headers, provider keys).
                    try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try sync.addHandler(
                        ClientHandler(proxy: proxy, admin: admin, pool: pool, idleTimeout: idleTimeout, readTimeout: readTimeout))
                    connections.add(channel)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            throw CollectorError("the collector cannot listen on \(host):\(port): \(error)")
        }
        let inFlight = proxy.inFlight
        await onRunning(channel.localAddress?.port ?? port)
        // Until a graceful shutdown (SIGTERM) begins, or the service is cancelled.
        try? await gracefulShutdown()

        let drained = group.next().makePromise(of: Void.self)
        quiesce.initiateShutdown(promise: drained)
        let finished = await Self.completes(drained.futureResult, within: cutOffAfter)
        if !finished {
            logger.warning(
                "calls still running at the end of the shutdown grace period are logged as cut off",
                metadata: ["collector.calls": "\(inFlight.count)"])
            inFlight.cutOffAll()
        }
        // Whatever is still open goes: upstream connections first (a call still waiting for its answer logs
        // that it got none), then the clients'.
        var closes: [EventLoopFuture<Void>] = []
        for loop in loops {
            let bound = poolsByLoop[ObjectIdentifier(loop)]!
            closes.append(loop.flatSubmit { bound.value.closeAll() })
        }
        try? await EventLoopFuture.andAllComplete(closes, on: group.next()).get()
        try? await EventLoopFuture.andAllComplete(connections.all().map { $0.close() }, on: group.next()).get()
        try? await channel.close().get()
    }

    /// Whether `future` completes within `limit`.
    static func completes(_ future: EventLoopFuture<Void>, within limit: Duration) async -> Bool {
        let loop = future.eventLoop
        let decided = loop.makePromise(of: Bool.self)
        let once = Once()
        let nanoseconds = limit.components.seconds * 1_000_000_000 + limit.components.attoseconds / 1_000_000_000
        let timer = loop.scheduleTask(in: .nanoseconds(nanoseconds)) { if once.first() { decided.succeed(false) } }
        future.whenComplete { _ in
            timer.cancel()
            if once.first() { decided.succeed(true) }
        }
        return (try? await decided.futureResult.get()) ?? false
    }
}

/// True for the first caller only.
final class Once: Sendable {
    private let done = Atomic<Bool>(false)
    func first() -> Bool { !done.exchange(true, ordering: .relaxed) }
}

/// The open client connections, for closing those still open when a shutdown's grace period ends. Touched once per
/// connection, never per call.
final class ClientConnections: Sendable {
    private let open = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        open.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in _ = self.open.withLock { $0.removeValue(forKey: id) } }
    }

    func all() -> [any Channel] { open.withLock { Array($0.values) } }
}
