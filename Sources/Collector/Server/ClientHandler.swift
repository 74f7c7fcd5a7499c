import NIOCore
import NIOHTTP1
import NIOPosix

/// The last handler of a client connection's pipeline: one request at a time (NIO's pipelining handler holds back the
/// next), each either one of the collector's own pages or a ``ProxyCall``.
///
/// It also keeps the connection's time limits: `client_idle_timeout` while no request is in progress (and for a new
/// connection's first head), `request_read_timeout` from a request's head to its last byte. One timer per connection,
/// moved lazily, serves both: a request that arrives whole costs none.
final class ClientHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let proxy: Proxy
    private let admin: AdminPages
    let pool: UpstreamPool
    private let idleTimeout: TimeAmount
    private let readTimeout: TimeAmount

    private var context: ChannelHandlerContext?
    private var call: ProxyCall?
    private var adminHead: HTTPRequestHead?
    /// A request is in progress, from its head to the end of its answer.
    private var busy = false
    private var keepAlive = true
    private var version = HTTPVersion.http1_1
    private(set) var isClosed = false
    /// The client closed its side of the connection (it may still read the answer).
    private var inputClosed = false
    private var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    private var timerDue = NIODeadline.distantFuture

    init(proxy: Proxy, admin: AdminPages, pool: UpstreamPool, idleTimeout: TimeAmount, readTimeout: TimeAmount) {
        self.proxy = proxy
        self.admin = admin
        self.pool = pool
        self.idleTimeout = idleTimeout
        self.readTimeout = readTimeout
    }

    /// The client is gone: the connection closed, or the client closed its side.
    var clientHasLeft: Bool { isClosed || inputClosed }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    // MARK: Inbound

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        setDeadline(.now() + idleTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            busy = true
            keepAlive = head.isKeepAlive
            version = head.version
            setDeadline(.now() + readTimeout)
            // A client that waits to be asked for its body (curl does for bodies over 1 KiB) is asked at once: the
            // collector reads every body before it decides anything.
            if head.version.minor >= 1, head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            if AdminPages.serves(head.uri) {
                adminHead = head
            } else {
                call = ProxyCall(head: head, proxy: proxy, client: self, loop: context.eventLoop)
            }
        case .body(let part):
            call?.requestBody(part)
        case .end:
            deadline = nil
            if let head = adminHead {
                adminHead = nil
                answerAdmin(head)
            } else {
                call?.requestEnded()
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { call?.clientWritable() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            if !busy { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        timer?.cancel()
        timer = nil
        deadline = nil
        let call = self.call
        self.call = nil
        call?.clientLeft()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or a broken pipe: the connection is done (the call, if any, hears it as the client leaving).
        context.close(promise: nil)
    }

    // MARK: Answers

    /// Writes an answer's head; its body follows with `writeBody`, its end with `writeEnd`.
    func writeHead(_ status: HTTPResponseStatus, headers: HTTPHeaders) {
        guard let context, !isClosed else { return }
        var headers = headers
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        if version.major == 1, version.minor == 0, !headers.contains(name: "content-length") {
            // An HTTP/1.0 client reads an answer of unknown length to the connection's close.
            keepAlive = false
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
    }

    func writeBody(_ buffer: ByteBuffer) {
        guard let context, !isClosed else { return }
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    /// The answer is whole: its end, then the next request (or the connection's close).
    func writeEnd() {
        guard let context, !isClosed else { return callEnded() }
        let close = !keepAlive || inputClosed
        // Writing the end may hand this handler the next pipelined request at once: this one is over first.
        call = nil
        busy = false
        if !close { setDeadline(.now() + idleTimeout) }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// The call ended without an answer to write (its client is gone).
    func callEnded() {
        call = nil
        busy = false
    }

    /// Ends the connection without a proper end of the answer (the provider broke off).
    func abort() {
        call = nil
        busy = false
        context?.close(promise: nil)
    }

    /// A whole answer of the collector's own.
    func respond(status: Int, contentType: String, body: ByteBuffer) {
        answer(AdminResponse(status: HTTPResponseStatus(statusCode: status), contentType: contentType, body: body))
    }

    private func answer(_ response: AdminResponse) {
        guard !isClosed else { return callEnded() }
        writeHead(response.status, headers: response.headers)
        if let body = response.body, body.readableBytes > 0 { writeBody(body) }
        writeEnd()
    }

    private func answerAdmin(_ head: HTTPRequestHead) {
        if var response = admin.respond(to: head) {
            if head.method == .HEAD { response.body = nil }
            return answer(response)
        }
        // Report downloads read files: on NIO's thread pool, then back here to answer.
        let admin = self.admin
        let loop = context!.eventLoop
        NIOThreadPool.singleton.runIfActive(eventLoop: loop) { admin.download(head) }
            .assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(let response): answer(response)
                case .failure: answer(AdminPages.text("the report could not be read\n", status: .internalServerError))
                }
            }
    }

    // MARK: Time limits

    private func setDeadline(_ new: NIODeadline) {
        deadline = new
        guard let context else { return }
        if let timer {
            // An armed timer fires no later than asked; one due later than the new deadline is moved.
            guard timerDue > new else { return }
            timer.cancel()
        }
        timerDue = new
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: new) { [self] in
            timer = nil
            timerDue = .distantFuture
            guard let deadline, let context = self.context else { return }
            if NIODeadline.now() >= deadline {
                // Idle too long, or a request read too slowly: the connection goes (a call cut off is logged).
                context.close(promise: nil)
            } else {
                setDeadline(deadline)
            }
        }
    }
}
