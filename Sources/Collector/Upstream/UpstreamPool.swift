import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import TallyConfig

/// Where one provider's calls go: its origin, the path its `base_url` puts before every call's, and the `Host` header.
struct UpstreamTarget: Sendable {
    /// One pool of connections per origin (and per CA file, since a private gateway's trust is its own).
    struct Origin: Hashable, Sendable {
        var host: String
        var port: Int
        var tls: Bool
        var caFile: String?
    }

    let origin: Origin
    /// The base URL's path without its trailing slash (`/openai` for Azure-style bases), or empty.
    let pathPrefix: String
    let hostHeader: String

    init?(provider: Provider, config: Config) {
        guard let url = URL(string: provider.baseURL), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty
        else { return nil }
        let tls = scheme == "https"
        guard tls || scheme == "http" else { return nil }
        let port = url.port ?? (tls ? 443 : 80)
        origin = Origin(host: host, port: port, tls: tls, caFile: provider.caFile.map(config.resolve))
        var path = url.path
        while path.hasSuffix("/") { path.removeLast() }
        pathPrefix = path
        let bracketed = host.contains(":") ? "[\(host)]" : host
        hostHeader = url.port == nil ? bracketed : "\(bracketed):\(port)"
    }
}

/// What the pools share: timeouts, limits and the TLS contexts, built once at start.
struct UpstreamSettings: Sendable {
    var connectTimeout: TimeAmount
    var readTimeout: TimeAmount
    var callTimeout: TimeAmount
    var maxConnectionsPerLoop: Int
    var idleTimeout: TimeAmount
    /// By CA file (nil: the system's trust store alone).
    var tlsContexts: [String?: NIOSSLContext]

    init(collector c: CollectorSettings, origins: some Sequence<UpstreamTarget.Origin>) throws {
        connectTimeout = .milliseconds(c.upstreamConnectTimeoutMs)
        readTimeout = .milliseconds(c.upstreamReadTimeoutMs)
        callTimeout = .milliseconds(c.upstreamCallTimeoutMs)
        maxConnectionsPerLoop = c.upstreamMaxConnections
        idleTimeout = .milliseconds(c.upstreamIdleTimeoutMs)
        tlsContexts = [:]
        for origin in origins where origin.tls && tlsContexts[origin.caFile] == nil {
            tlsContexts[origin.caFile] = try Self.tlsContext(caFile: origin.caFile)
        }
    }

    /// Certificate and hostname verification on, the system's roots plus the provider's CA file, HTTP/1.1 by ALPN.
    static func tlsContext(caFile: String?) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .fullVerification
        tls.applicationProtocols = ["http/1.1"]
        if let caFile {
            guard FileManager.default.isReadableFile(atPath: caFile) else {
                throw CollectorError("ca_file \(caFile) cannot be read")
            }
            do {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))]
            } catch {
                throw CollectorError("ca_file \(caFile) holds no PEM certificates Tally can read: \(error)")
            }
        }
        do { return try NIOSSLContext(configuration: tls) } catch { throw CollectorError("TLS for providers cannot be set up: \(error)") }
    }
}

/// The keep-alive connections to the providers that one event loop's calls use: a call never leaves its loop.
///
/// Per origin, at most `maxConnectionsPerLoop` connections are open; a call that finds none idle opens one, or waits
/// for one to come back (at most the connect timeout) when all are busy. Idle connections are reused newest first and
/// closed after `idleTimeout`, or as soon as the provider closes them. Touched only on its loop.
final class UpstreamPool {
    let loop: any EventLoop
    let settings: UpstreamSettings
    private var idle: [UpstreamTarget.Origin: [UpstreamConnection]] = [:]
    private var open: [UpstreamTarget.Origin: Int] = [:]
    private var waiting: [UpstreamTarget.Origin: CircularBuffer<Waiter>] = [:]
    private var nextWaiterID = 0
    private var sweep: Scheduled<Void>?
    private var closing = false
    /// Every open connection, idle or in use, for closing them all at shutdown.
    var live: [ObjectIdentifier: UpstreamConnection] = [:]

    typealias Handout = (Result<UpstreamConnection, any Error>) -> Void

    private struct Waiter {
        var id: Int
        var handout: Handout
        var timeout: Scheduled<Void>
    }

    init(loop: any EventLoop, settings: UpstreamSettings) {
        self.loop = loop
        self.settings = settings
    }

    /// Hands a connection to `origin` to `handout`: an idle one at once (unless `fresh`), else a new one once connected.
    func acquire(_ origin: UpstreamTarget.Origin, fresh: Bool = false, _ handout: @escaping Handout) {
        loop.preconditionInEventLoop()
        guard !closing else { return handout(.failure(UpstreamError.shuttingDown)) }
        while !fresh, let connection = idle[origin]?.popLast() {
            if connection.isUsable { return handout(.success(connection)) }
        }
        if open[origin, default: 0] < settings.maxConnectionsPerLoop {
            connect(origin, handout)
            return
        }
        let id = nextWaiterID
        nextWaiterID += 1
        let timeout = loop.assumeIsolated().scheduleTask(in: settings.connectTimeout) { [self] in
            guard var queue = waiting[origin], let at = queue.firstIndex(where: { $0.id == id }) else { return }
            let waiter = queue.remove(at: at)
            waiting[origin] = queue
            waiter.handout(.failure(UpstreamError.poolExhausted(settings.maxConnectionsPerLoop)))
        }
        waiting[origin, default: CircularBuffer()].append(Waiter(id: id, handout: handout, timeout: timeout))
    }

    /// Takes a connection back after a call: kept for the next call when `reusable`, else closed.
    func release(_ connection: UpstreamConnection, reusable: Bool) {
        loop.preconditionInEventLoop()
        let origin = connection.origin
        guard reusable, connection.isUsable, !closing else {
            connection.close()
            return
        }
        if let waiter = waiting[origin]?.popFirst() {
            waiter.timeout.cancel()
            return waiter.handout(.success(connection))
        }
        connection.idleSince = .now()
        idle[origin, default: []].append(connection)
        armSweep()
    }

    /// Closes every connection (shutdown): calls still waiting for an answer fail, and no new one is opened.
    func closeAll() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        closing = true
        sweep?.cancel()
        for (_, queue) in waiting {
            for waiter in queue {
                waiter.timeout.cancel()
                waiter.handout(.failure(UpstreamError.shuttingDown))
            }
        }
        waiting = [:]
        let everyone = Array(live.values)
        idle = [:]
        let closes = everyone.map { $0.channel.close() }
        return EventLoopFuture.andAllComplete(closes, on: loop)
    }

    // MARK: Connections

    private func connect(_ origin: UpstreamTarget.Origin, _ handout: @escaping Handout) {
        open[origin, default: 0] += 1
        let tlsContext = origin.tls ? settings.tlsContexts[origin.caFile] : nil
        let host = origin.host
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(settings.connectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: false)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        // SNI and hostname verification use the name; an IP address gets neither SNI nor a name check.
                        let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: isAddress ? nil : host))
                    }
                    // NIO's response decoder, as `addHTTPClientHandlers` adds it, behind the collector's own request
                    // encoder. Headers were parsed by NIO's HTTP parser or checked at start (see ProxyServer).
                    try sync.addHandler(UpstreamRequestEncoder())
                    try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try sync.addHandler(UpstreamConnection.Handler())
                }
            }
        bootstrap.connect(host: origin.host, port: origin.port).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let channel):
                guard let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamConnection.Handler.self) else {
                    channel.close(promise: nil)
                    self.connectionClosed(origin)
                    return handout(.failure(UpstreamError.closed))
                }
                let connection = UpstreamConnection(channel: channel, origin: origin, handler: handler, pool: self)
                handout(.success(connection))
            case .failure(let error):
                self.connectionClosed(origin)
                handout(.failure(error))
            }
        }
    }

    /// A connection closed (by either side): its place may go to a call waiting for one.
    func connectionClosed(_ origin: UpstreamTarget.Origin) {
        // A closed idle connection stays listed until a call skips it or the sweep drops it (both check `isUsable`):
        // filtering the list here made the sweep's closes quadratic.
        open[origin, default: 1] -= 1
        if !closing, let waiter = waiting[origin]?.popFirst() {
            waiter.timeout.cancel()
            connect(origin, waiter.handout)
        }
    }

    private func armSweep() {
        guard sweep == nil else { return }
        let every = TimeAmount.nanoseconds(max(settings.idleTimeout.nanoseconds / 4, TimeAmount.milliseconds(250).nanoseconds))
        sweep = loop.assumeIsolated().scheduleTask(in: every) { [self] in
            sweep = nil
            let cutoff = NIODeadline.now() - settings.idleTimeout
            var any = false
            for (origin, list) in idle {
                var kept: [UpstreamConnection] = []
                for connection in list {
                    if connection.isUsable, connection.idleSince > cutoff { kept.append(connection) } else { connection.close() }
                }
                idle[origin] = kept
                any = any || !kept.isEmpty
            }
            if any { armSweep() }
        }
    }
}

/// Why a call could not get an answer from its provider.
enum UpstreamError: Error, CustomStringConvertible {
    case closed
    case shuttingDown
    case poolExhausted(Int)
    case readTimeout
    case callTimeout

    var description: String {
        switch self {
        case .closed: "the provider closed the connection"
        case .shuttingDown: "the collector is shutting down"
        case .poolExhausted(let most): "all \(most) connections to the provider are busy (upstream_max_connections)"
        case .readTimeout: "the provider was silent longer than upstream_read_timeout"
        case .callTimeout: "the call took longer than upstream_call_timeout"
        }
    }
}

/// What a call hears from its upstream connection, on the connection's loop.
protocol UpstreamDelegate: AnyObject {
    func upstreamHead(_ head: HTTPResponseHead)
    func upstreamBody(_ body: ByteBuffer)
    func upstreamEnd()
    /// A socket read ended: a moment to flush what was written to the client.
    func upstreamReadComplete()
    /// The connection failed or closed before the answer's end.
    func upstreamFailed(_ error: any Error)
}

/// One keep-alive HTTP/1.1 connection to a provider, used by one call at a time.
final class UpstreamConnection {
    let channel: any Channel
    let origin: UpstreamTarget.Origin
    let handler: Handler
    unowned let pool: UpstreamPool
    var idleSince = NIODeadline.now()
    /// Requests sent on it so far.
    private(set) var uses = 0

    init(channel: any Channel, origin: UpstreamTarget.Origin, handler: Handler, pool: UpstreamPool) {
        self.channel = channel
        self.origin = origin
        self.handler = handler
        self.pool = pool
        handler.connection = self
        pool.live[ObjectIdentifier(self)] = self
    }

    var isUsable: Bool { channel.isActive && !handler.failed }

    /// Sends one request; the answer goes to `delegate`.
    func send(_ head: HTTPRequestHead, body: ByteBuffer?, to delegate: any UpstreamDelegate) {
        uses += 1
        handler.start(delegate: delegate, readTimeout: pool.settings.readTimeout, callTimeout: pool.settings.callTimeout)
        let context = handler.context!
        context.write(NIOAny(HTTPClientRequestPart.head(head)), promise: nil)
        if let body, body.readableBytes > 0 { context.write(NIOAny(HTTPClientRequestPart.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(NIOAny(HTTPClientRequestPart.end(nil)), promise: nil)
    }

    /// Stops reading from the provider until `resumeReading` (the client reads more slowly than the provider sends).
    func pauseReading() { handler.paused = true }

    func resumeReading() { handler.resume() }

    /// The call no longer wants what the connection says; it is closed (its answer was not read to the end).
    func close() {
        handler.delegate = nil
        channel.close(promise: nil)
    }

    /// The call is done with the connection: back to the pool, kept when the answer ended cleanly on a keep-alive one.
    func finished(reusable: Bool) {
        handler.delegate = nil
        pool.release(self, reusable: reusable && handler.answerEnded)
    }

    /// The connection's last handler: parts of the answer to the delegate, timeouts, and reads held back on demand.
    final class Handler: ChannelDuplexHandler {
        typealias InboundIn = HTTPClientResponsePart
        typealias OutboundIn = HTTPClientRequestPart
        typealias OutboundOut = HTTPClientRequestPart

        weak var connection: UpstreamConnection?
        var delegate: (any UpstreamDelegate)?
        private(set) var context: ChannelHandlerContext?
        /// A call is waiting for (or reading) an answer.
        private var active = false
        private(set) var answerEnded = false
        private(set) var failed = false
        /// Whether any byte of the current answer came.
        private(set) var answerStarted = false
        var paused = false
        private var readPending = false
        private var readDeadline: NIODeadline?
        private var callDeadline: NIODeadline?
        private var readTimeout = TimeAmount.zero
        private var timer: Scheduled<Void>?

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }

        func start(delegate: any UpstreamDelegate, readTimeout: TimeAmount, callTimeout: TimeAmount) {
            self.delegate = delegate
            active = true
            answerEnded = false
            answerStarted = false
            self.readTimeout = readTimeout
            let now = NIODeadline.now()
            readDeadline = now + readTimeout
            callDeadline = now + callTimeout
            armTimer()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard active else { return }
            readDeadline = .now() + readTimeout
            answerStarted = true
            switch unwrapInboundIn(data) {
            case .head(let head):
                // 1xx answers (100 Continue) are not the answer.
                if head.status.code >= 100, head.status.code < 200 { return }
                delegate?.upstreamHead(head)
            case .body(let body):
                delegate?.upstreamBody(body)
            case .end:
                active = false
                answerEnded = true
                readDeadline = nil
                callDeadline = nil
                delegate?.upstreamEnd()
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            delegate?.upstreamReadComplete()
        }

        func read(context: ChannelHandlerContext) {
            if paused {
                readPending = true
            } else {
                context.read()
            }
        }

        func resume() {
            paused = false
            if readPending, let context {
                readPending = false
                context.read()
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            fail(error)
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            fail(UpstreamError.closed)
            timer?.cancel()
            timer = nil
            if let connection {
                connection.pool.live.removeValue(forKey: ObjectIdentifier(connection))
                connection.pool.connectionClosed(connection.origin)
            }
            context.fireChannelInactive()
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            timer?.cancel()
            self.context = nil
        }

        /// Tells the call its answer will not come (once), and marks the connection unusable.
        private func fail(_ error: any Error) {
            failed = true
            guard active else { return }
            active = false
            readDeadline = nil
            callDeadline = nil
            let delegate = self.delegate
            self.delegate = nil
            delegate?.upstreamFailed(error)
        }

        /// One timer per connection, moved lazily: set when a call starts, it fires at the earliest deadline it knew
        /// of and re-arms itself if the deadline moved on meanwhile, so reads cost no timer.
        private func armTimer() {
            guard timer == nil, let context, let due = [readDeadline, callDeadline].compactMap({ $0 }).min() else { return }
            timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) { [self] in
                timer = nil
                guard active, let context = self.context else { return }
                let now = NIODeadline.now()
                if let callDeadline, now >= callDeadline {
                    fail(UpstreamError.callTimeout)
                    context.close(promise: nil)
                } else if let readDeadline, now >= readDeadline {
                    fail(UpstreamError.readTimeout)
                    context.close(promise: nil)
                } else {
                    armTimer()
                }
            }
        }
    }
}
