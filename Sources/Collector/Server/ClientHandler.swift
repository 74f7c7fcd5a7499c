import NIOCore
import NIOHTTP1
import NIOPosix
import TallyCore

/// The last handler of a client connection's pipeline, after NIO's HTTP/1.1 codecs: one request at a time, each either
/// one of the collector's own pages or a ``ProxyCall``.
///
/// It does the work of NIO's pipelining and protocol-error handlers itself, so that a call costs no handler hops and
/// no change of the socket's read interest (two `epoll_ctl` per call, when reads are held for every answer). Reads go
/// on while a call is answered; a request that arrives behind it (pipelined) is held, with whatever follows it, and
/// reading stops until its turn. Bytes that are not HTTP get 400 and the connection's close, after the answer ahead of
/// them. A graceful shutdown (`ChannelShouldQuiesceEvent`) closes an idle connection at once and a busy one after its
/// answer, which then says `connection: close`.
///
/// It also keeps the connection's time limits: `client_idle_timeout` while no request is in progress (and for a new
/// connection's first head), `request_read_timeout` from a request's head to its last byte. One timer per connection,
/// moved lazily, serves both: a request that arrives whole costs none.
final class ClientHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// What came in behind a request that is still being answered, kept until that answer ends.
    private enum Held {
        case part(HTTPServerRequestPart)
        case inputClosed
        case malformed
    }

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
    /// The request in progress has arrived whole: whatever comes next belongs to the next one.
    private var requestEnded = false
    /// The answer's head was written.
    private var answerStarted = false
    /// Made when something is first held (a connection that never pipelines allocates nothing for it), nil again once
    /// all of it has had its turn.
    private var held: CircularBuffer<Held>?
    /// The channel asked to read while requests were held: it reads once they have had their turn.
    private var readPending = false
    private var keepAlive = true
    /// A graceful shutdown began: this connection ends after the answer in progress.
    private var quiescing = false
    private var version = HTTPVersion.http1_1
    /// The method of the request in progress (an answer to `HEAD` has no body).
    private var method = HTTPMethod.GET
    /// Answers to bytes, in place of NIO's `HTTPResponseEncoder`; what it holds goes out at the next flush.
    private var encoder = ClientAnswerEncoder()
    private(set) var isClosed = false
    /// The client closed its side of the connection (it may still read the answer).
    private var inputClosed = false
    /// The last key presented on this connection and its hash: a client sends the same key call after call.
    private var lastKey: (secret: String, hash: String)?
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

    /// The SHA-256 of a presented key, which the key list is looked up by. The last key and its hash are kept, so a
    /// connection that presents the same key call after call hashes it once.
    func secretHash(_ secret: String) -> String {
        if let lastKey, lastKey.secret == secret { return lastKey.hash }
        let hash = Hex.sha256(secret)
        lastKey = (secret, hash)
        return hash
    }

    /// The client is gone: the connection closed, or the client closed its side.
    var clientHasLeft: Bool { isClosed || inputClosed }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// Whatever arrives now belongs to a request behind the one in progress (or behind those already held).
    private var mustHold: Bool { (busy && requestEnded) || held != nil }

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
        let part = unwrapInboundIn(data)
        if mustHold { return hold(.part(part)) }
        handle(part, context: context)
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            busy = true
            requestEnded = false
            answerStarted = false
            keepAlive = head.isKeepAlive && !quiescing
            version = head.version
            method = head.method
            setDeadline(.now() + readTimeout)
            // A client that waits to be asked for its body (curl does for bodies over 1 KiB) is asked at once: the
            // collector reads every body before it decides anything.
            if head.version.minor >= 1, head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                encoder.head(
                    HTTPResponseHead(version: head.version, status: .continue), answering: head.method, allocator: context.channel.allocator
                )
                flushAnswer(context: context)
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
            requestEnded = true
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
            // Behind held requests, it has its turn after them; otherwise the call in progress hears of it now.
            if held != nil { return hold(.inputClosed) }
            return clientClosedInput(context: context)
        }
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            held = nil
            guard busy else { return context.close(promise: nil) }
            keepAlive = false
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func clientClosedInput(context: ChannelHandlerContext) {
        inputClosed = true
        if !busy { context.close(promise: nil) }
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
        guard error is HTTPParserError else {
            // A reset or a broken pipe: the connection is done (the call, if any, hears it as the client leaving).
            return context.close(promise: nil)
        }
        if mustHold { return hold(.malformed) }
        answerMalformed(context: context)
    }

    /// Bytes that are not HTTP: 400 if no answer has begun, and the connection's close (the decoder reads no further).
    private func answerMalformed(context: ChannelHandlerContext) {
        if !answerStarted {
            let headers = HTTPHeaders([("connection", "close"), ("content-length", "0")])
            let allocator = context.channel.allocator
            encoder.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers), answering: .GET, allocator: allocator)
            encoder.end(allocator: allocator)
            flushAnswer(context: context)
        }
        context.close(promise: nil)
    }

    // MARK: Requests behind the one in progress

    /// Keeps `item` until the answer ahead of it ends; `read` holds the channel's reads while anything is held.
    private func hold(_ item: Held) {
        if held == nil { held = CircularBuffer(initialCapacity: 4) }
        held!.append(item)
    }

    func read(context: ChannelHandlerContext) {
        if held == nil {
            context.read()
        } else {
            readPending = true
        }
    }

    /// After an answer: what was held has its turn (on the loop's next tick, outside the call that just ended), and
    /// reading resumes once nothing is held.
    private func resumeHeld(context: ChannelHandlerContext) {
        guard held != nil else { return }
        context.eventLoop.assumeIsolated().execute { [self] in
            guard let context = self.context, !isClosed else { return }
            // Until a request is in progress again, or what was held closed the connection (a malformed request, the
            // client's half-close while idle): nothing is handled on a closed connection.
            while !isClosed, !(busy && requestEnded), let item = held?.popFirst() {
                switch item {
                case .part(let part): handle(part, context: context)
                case .inputClosed: clientClosedInput(context: context)
                case .malformed: answerMalformed(context: context)
                }
            }
            if held?.isEmpty == true { held = nil }
            if held == nil, readPending {
                readPending = false
                context.read()
            }
        }
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
        answerStarted = true
        encoder.head(
            HTTPResponseHead(version: version, status: status, headers: headers), answering: method,
            allocator: context.channel.allocator)
    }

    func writeBody(_ buffer: ByteBuffer) {
        guard let context, !isClosed else { return }
        encoder.body(buffer, allocator: context.channel.allocator) { context.write(wrapOutboundOut(.byteBuffer($0)), promise: nil) }
    }

    func flush() {
        guard let context else { return }
        flushAnswer(context: context)
    }

    /// Writes what the encoder holds, and flushes.
    private func flushAnswer(context: ChannelHandlerContext) {
        if let bytes = encoder.take() { context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: nil) }
        context.flush()
    }

    /// The answer is whole: its end, then the next request (or the connection's close).
    func writeEnd() {
        guard let context, !isClosed else { return callEnded() }
        let close = !keepAlive || inputClosed
        call = nil
        busy = false
        answerStarted = false
        encoder.end(allocator: context.channel.allocator)
        let bytes = encoder.take() ?? context.channel.allocator.buffer(capacity: 0)
        if close {
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(bytes))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            setDeadline(.now() + idleTimeout)
            // No promise: making one and its future cost about 5,000 instructions per call (callgrind) that nothing waited for.
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
            resumeHeld(context: context)
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
        encoder = ClientAnswerEncoder()
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
