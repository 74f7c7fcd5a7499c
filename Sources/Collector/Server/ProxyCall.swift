import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import TallyConfig
import TallyCore
import UsageLog

/// One call through the proxy, from the client's request head to its log line, all on the event loop that owns the
/// client's connection: no task is created or resumed for it.
///
/// The request is read whole (it may be rewritten before it goes; its prompt is hashed once the answer starts), then
/// the call takes a slot in the log queue, its key and endpoint are checked, and it goes to the provider over a
/// keep-alive connection of the loop's ``UpstreamPool``. The answer is passed to the client chunk by chunk while usage
/// is read on the side; when the client reads more slowly than the provider sends, reading from the provider stops
/// until the client catches up.
///
/// A client that leaves mid-answer does not end the call for the provider, which bills it whole: by default
/// (`on_client_abort: drain`) the rest of the answer is read, not kept, until its usage arrives or it ends, for at most
/// `drain_timeout`; with `cancel` the upstream is closed at once and the usage estimated. When the upstream breaks off,
/// the client's connection is closed without a proper end, so that its SDK raises instead of taking half an answer for
/// a whole one.
final class ProxyCall: UpstreamDelegate {
    private enum Phase {
        /// The request's head came; its body is arriving.
        case readingRequest
        /// Read whole; waiting for room in the log queue.
        case waitingForSlot
        /// A large body is being parsed and hashed off the loop.
        case readingBody
        /// Sent (or being sent) to the provider; no answer yet.
        case forwarded
        /// The provider's answer is streaming through.
        case answering
        case done
    }

    private let proxy: Proxy
    private let client: ClientHandler
    private let loop: any EventLoop
    private let head: HTTPRequestHead
    private let started = ContinuousClock.now
    private let now = Timestamp.now()
    private var phase = Phase.readingRequest

    private let query: Substring?
    private var route: Route?
    /// The SHA-256 of the key the client presented (header or query), as read from the head.
    private var keyHash: String?
    /// A refusal decided from the head alone (a path that is not one, no provider there): answered once the request is
    /// read, and not logged, since no key or provider is known.
    private var early: (status: Int, body: [UInt8])?
    private var body: ByteBuffer?
    private var tooLarge = false
    /// The key will be refused: the body is not kept.
    private var discardBody = false
    private var record: CallRecord?
    /// A request whose prompt is still to be hashed: done once the answer's first bytes are flushed to the client (so
    /// the client never waits for it), and in any case before its event is logged (`readPrompt`).
    private var unreadPrompt: (json: JSONValue, reading: RequestReading, key: Key)?
    private var slotWait: (ticket: UInt64, timeout: Scheduled<Void>)?

    private var upstream: UpstreamConnection?
    /// The request as sent upstream, kept until its answer starts, for one retry on a new connection.
    private var sent: (head: HTTPRequestHead, body: ByteBuffer?, origin: UpstreamTarget.Origin)?
    private var retried = false
    private var beforeUpstream = ContinuousClock.now
    private var sse: SSEUsageParser?
    private var plain: TopLevelFieldCapture?
    private var injectedUsage = false
    private var isStream = false
    private var answerKeepAlive = true
    private var ending = CallRecord.Ending()
    private var progress: InFlightCalls.Call?
    private var drainTimer: Scheduled<Void>?
    /// Chunks of the answer passed on to the client and not read yet (`readPassedOn`).
    private var passedOn: [ByteBuffer] = []
    /// What the provider's current socket read brought for the client, written as one part when the read ends. A
    /// stream's events come as many small chunks in one read: one write instead of one per chunk spares the HTTP
    /// encoder its framing of each, and the client gets the same bytes at the same moment (the flush comes then).
    private var unwritten: ByteBuffer?

    init(head: HTTPRequestHead, proxy: Proxy, client: ClientHandler, loop: any EventLoop) {
        self.head = head
        self.proxy = proxy
        self.client = client
        self.loop = loop
        let uri = head.uri[...]
        let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?"))
        let rawPath = mark.map { uri[..<$0] } ?? uri
        query = mark.map { uri[uri.index(after: $0)...] }
        // The path as the provider will read it; one that could be read two ways is refused before anything else.
        switch PathNormalizer.normalize(String(rawPath)) {
        case .success(let path):
            if let route = Route(path: path, config: proxy.config) {
                self.route = route
                keyHash = Proxy.presentedKey(head.headers, query: query, adapter: route.adapter).map(client.secretHash)
                // A key that will be refused does not get its body kept (its verdict is taken again once the call has
                // its log slot, since a list reload may come meanwhile).
                if let keyHash, case .ok = proxy.keys.verdict(secretHash: keyHash, now: now) {} else { discardBody = true }
            } else {
                let kind = proxy.config.defaultProvider.flatMap(proxy.config.provider(named:))?.kind ?? .openai
                let known = proxy.config.providers.map { "/\($0.name)/" }.joined(separator: ", ")
                let message = "no provider at \(path); use one of \(known)\(proxy.config.defaultProvider != nil ? " or /v1/" : "")"
                early = ProviderAdapters.adapter(for: kind).refusal(.unknownRoute, message: message)
            }
        case .failure(let error):
            let named = rawPath.split(separator: "/").first.flatMap { proxy.config.provider(named: String($0)) }
            let kind = named?.kind ?? proxy.config.defaultProvider.flatMap(proxy.config.provider(named:))?.kind ?? .openai
            early = ProviderAdapters.adapter(for: kind).refusal(.badPath, message: "\(error.message): \(rawPath.prefix(200))")
        }
    }

    // MARK: The request

    func requestBody(_ part: ByteBuffer) {
        guard early == nil, !discardBody, !tooLarge else { return }
        if body == nil {
            body = part
        } else {
            body!.writeImmutableBuffer(part)
        }
        if body!.readableBytes > Proxy.maxRequestBytes {
            tooLarge = true
            body = nil
        }
    }

    /// The request arrived whole: take a slot in the log queue, waiting for one at most `log_queue_wait`.
    func requestEnded() {
        if let early { return answer(early) }
        let queue = proxy.queue
        if queue.tryReserve() { return admitted(afterWaiting: false) }
        let wait = proxy.config.collector.logQueueWaitMs
        guard wait > 0 else { return logUnavailable() }
        phase = .waitingForSlot
        let bound = NIOLoopBound(self, eventLoop: loop)
        let loop = self.loop
        guard
            let ticket = queue.waitForSlot({ granted in
                loop.execute { bound.value.slotCame(granted) }
            })
        else { return admitted(afterWaiting: false) }
        let timeout = loop.assumeIsolated().scheduleTask(in: .milliseconds(wait)) { queue.expire(ticket) }
        slotWait = (ticket, timeout)
    }

    private func slotCame(_ granted: Bool) {
        slotWait?.timeout.cancel()
        slotWait = nil
        guard granted else { return logUnavailable() }
        admitted(afterWaiting: true)
    }

    private func logUnavailable() {
        proxy.metrics.logUnavailable.add(1, ordering: .relaxed)
        let why = proxy.queue.writerProblem.map { "it cannot write its usage log: \($0)" } ?? "its usage log queue is full"
        answer(
            route!.adapter.refusal(.logUnavailable, message: "the collector did not forward this call because \(why); try again shortly"))
    }

    /// The call has its slot: check the key and the endpoint, read the body, and forward.
    private func admitted(afterWaiting: Bool) {
        let route = self.route!
        let adapter = route.adapter
        if afterWaiting, client.clientHasLeft {
            // Nobody waits for this call any more: it is not forwarded.
            proxy.queue.release()
            proxy.metrics.abandonedWhileWaiting.add(1, ordering: .relaxed)
            return answer(adapter.refusal(.logUnavailable, message: "the client left while the call waited"))
        }
        record = CallRecord(
            route: route, collector: proxy.config.collector.id, tags: Proxy.tags(head.headers), started: started, now: now)

        guard let keyHash else {
            return refuse(
                .rejectedUnknownKey, .unknownKey, message: "no API key: send a Tally key (tk-…) as 'Authorization: Bearer' or 'x-api-key'")
        }
        let verdict = proxy.keys.verdict(secretHash: keyHash, now: now)
        if let key = verdict.key { record!.identified(keyID: key.id) }
        switch verdict {
        case .unknown:
            refuse(.rejectedUnknownKey, .unknownKey, message: "the API key is not a Tally key this collector knows")
        case .revoked(let key, let entry):
            let until = entry.until.map { " until \(Timestamp.format(milliseconds: $0))" } ?? ""
            refuse(.rejectedRevoked, .revoked(entry.kind), message: "key \(key.id) is revoked\(until): \(entry.message)")
        case .expired(let key):
            refuse(
                .rejectedRevoked, .revoked(.expired),
                message: "key \(key.id) expired at \(Timestamp.format(milliseconds: key.expires ?? now))")
        case .unavailable(_, let reason):
            // Fail closed: without a list to trust, no key is known not to be revoked.
            refuse(
                .rejectedInvalid, .revocationsUnavailable,
                message: "the collector cannot check revocations (\(reason)); try again shortly", error: "revocation list unavailable")
        case .ok(let key):
            // The endpoint policy: the real key reaches only what is metered, harmless, or allowed.
            let method = head.method.rawValue
            let access = adapter.access(method: method, path: route.path, upstreamPath: route.upstreamPath[...])
            if case .unmetered(let group) = access {
                guard access.isAllowed(provider: route.provider.allow, key: key.allow) else {
                    return refuse(
                        .rejectedInvalid, .endpointNotAllowed,
                        message:
                            "\(method) \(route.upstreamPath.prefix(200)) is a '\(group)' endpoint, which Tally does not meter; it is not allowed for key \(key.id) (an operator may add '\(group)' to the provider's or the key's allow list)",
                        error: "endpoint not allowed: \(group)")
                }
                record!.unmetered()
            }
            readBody(key: key)
        }
    }

    /// Reads what the log needs from the request. A body that is not a readable JSON object goes through as it is to
    /// an unmetered path, and is refused on a metered one (its call could not be metered). A large body is parsed,
    /// hashed and redacted on NIO's thread pool, so that the loop's other connections do not wait for it.
    private func readBody(key: Key) {
        if tooLarge {
            return refuse(
                .rejectedInvalid, .requestTooLarge, message: "the request body is larger than \(Proxy.maxRequestBytes >> 20) MiB")
        }
        let bytes = body.map { Array($0.readableBytesView) } ?? []
        let route = self.route!
        guard bytes.count >= Proxy.offLoopBodyBytes else {
            // The prompt is hashed once the call has gone upstream (`forward`).
            return bodyRead(proxy.readBody(bytes, route: route, key: key, prompt: false), bytes: bytes, key: key)
        }
        phase = .readingBody
        let proxy = self.proxy
        let bound = NIOLoopBound(self, eventLoop: loop)
        NIOThreadPool.singleton.runIfActive(eventLoop: loop) { proxy.readBody(bytes, route: route, key: key, prompt: true) }
            .assumeIsolated().whenComplete { result in
                bound.value.bodyRead((try? result.get()) ?? nil, bytes: bytes, key: key)
            }
    }

    private func bodyRead(_ read: Proxy.BodyRead?, bytes: [UInt8], key: Key) {
        let route = self.route!
        if let read {
            record!.requestRead(read.reading)
            if let prompt = read.prompt {
                record!.promptRead(prompt.fingerprint, preview: prompt.preview)
            } else {
                unreadPrompt = (read.json, read.reading, key)
            }
            if let rewritten = read.reading.rewrittenBody {
                body = ByteBuffer(bytes: rewritten)
                injectedUsage = true
            }
        } else if route.endpoint != .other, !bytes.isEmpty || head.method == .POST {
            // A metered call whose body Tally cannot read would go through unmetered: refused instead.
            return refuse(
                .rejectedInvalid, .unreadableBody,
                message: "the request body is not a JSON object Tally can read (at most \(JSONValue.maximumDepth) levels deep, valid UTF-8)"
            )
        }
        if client.isClosed {
            // The client left while its body was read: nothing has gone upstream.
            return refuse(
                .rejectedInvalid, .requestNotRead, message: "the client left before the call was forwarded",
                error: "request not read in time")
        }
        if let user = head.headers.first(name: "x-tally-user"), !user.isEmpty { record!.endUser(user) }
        forward()
    }

    // MARK: Forwarding

    private func forward() {
        let route = self.route!
        let adapter = route.adapter
        guard let realKey = proxy.providerKeys[route.provider.name], let target = proxy.targets[route.provider.name] else {
            return refuse(
                .upstreamError, .noProviderKey,
                message: "the collector has no key for provider \(route.provider.name) (set \(route.provider.apiKeyEnv))")
        }
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 6)
        headers.add(name: "host", value: target.hostHeader)
        for (name, value) in head.headers where !Proxy.droppedRequestHeaders.contains(name) {
            headers.add(name: name, value: value)
        }
        headers.add(name: "accept-encoding", value: "identity")
        for (name, value) in route.provider.headers { headers.replaceOrAdd(name: name, value: value) }
        let credential = adapter.credential(realKey: realKey)
        headers.replaceOrAdd(name: credential.name, value: credential.value)
        let method = head.method
        let sendsBody = (body?.readableBytes ?? 0) > 0 || method == .POST || method == .PUT || method == .PATCH
        if sendsBody { headers.add(name: "content-length", value: String(body?.readableBytes ?? 0)) }
        let upstreamQuery = adapter.upstreamQuery(query)
        var uri = target.pathPrefix + route.upstreamPath
        if let upstreamQuery { uri += "?" + upstreamQuery }
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)
        let body = sendsBody ? self.body : nil
        self.body = nil

        phase = .forwarded
        beforeUpstream = ContinuousClock.now
        sent = (upstreamHead, body, target.origin)
        send(fresh: false)
        // The prompt is hashed while the provider works on the call: the request has been written (or a connection is
        // being opened), and the loop would otherwise wait for the answer. Hashed after the answer's first bytes, it
        // kept the loop from reading the client's next request (a one-connection call took 20–25 µs longer).
        readPrompt()
    }

    /// Hashes the prompt and takes its preview, if that is still to do. Done before the answer's head is shown to the
    /// shutdown path (`InFlightCalls`), whose copy of the record therefore has them.
    private func readPrompt() {
        guard let (json, reading, key) = unreadPrompt else { return }
        unreadPrompt = nil
        let prompt = proxy.readPrompt(json, reading: reading, key: key)
        record!.promptRead(prompt.fingerprint, preview: prompt.preview)
    }

    private func send(fresh: Bool) {
        guard let sent else { return }
        client.pool.acquire(sent.origin, fresh: fresh) { [self] result in
            switch result {
            case .success(let connection):
                upstream = connection
                connection.send(sent.head, body: sent.body, to: self)
            case .failure(let error):
                unreachable(error)
            }
        }
    }

    private func unreachable(_ error: any Error) {
        let name = route!.provider.name
        proxy.logger.warning("upstream unreachable", metadata: ["collector.provider": "\(name)", "error": "\(error)"])
        refuse(.upstreamError, .upstreamUnreachable, message: "the collector could not reach \(name)", error: "upstream unreachable")
    }

    // MARK: The answer

    private static let contentLength = HeaderNames(["content-length"])
    private static let contentType = HeaderNames(["content-type"])

    func upstreamHead(_ upstreamHead: HTTPResponseHead) {
        guard phase == .forwarded else { return }
        let afterUpstream = ContinuousClock.now
        proxy.metrics.observeUpstream(seconds: (afterUpstream - beforeUpstream).seconds)
        var headers = HTTPHeaders()
        headers.reserveCapacity(upstreamHead.headers.count + 1)
        var contentType = ""
        var contentLength: Int?
        for (name, value) in upstreamHead.headers {
            if Self.contentLength.contains(name) { contentLength = Int(value) }
            guard !Proxy.droppedResponseHeaders.contains(name) else { continue }
            if Self.contentType.contains(name) { contentType = Proxy.lowercased(value) }
            headers.add(name: name, value: value)
        }
        isStream = contentType.hasPrefix("text/event-stream")
        sent = nil
        answerKeepAlive = upstreamHead.isKeepAlive
        let status = Int(upstreamHead.status.code)
        record!.forwarded(status: status, streamed: isStream)
        let adapter = route!.adapter
        if isStream {
            sse = SSEUsageParser(reader: adapter.streamReader(), dropInjectedUsageChunk: injectedUsage)
        } else {
            plain = adapter.responseCapture(path: route!.path)
        }
        progress = proxy.inFlight.register(record!)
        phase = .answering
        proxy.metrics.observeAdded(seconds: ((beforeUpstream - started) + (ContinuousClock.now - afterUpstream)).seconds)
        if client.isClosed {
            clientLeft()
            return
        }
        // Keep the length when the body goes through unchanged.
        if !injectedUsage, let contentLength { headers.add(name: "content-length", value: String(contentLength)) }
        client.writeHead(HTTPResponseStatus(statusCode: status, reasonPhrase: upstreamHead.status.reasonPhrase), headers: headers)
    }

    func upstreamBody(_ chunk: ByteBuffer) {
        guard phase == .answering else { return }
        if isStream, ending.bodyBytes == 0 {
            record!.firstByte(at: ContinuousClock.now)
            let record = self.record!
            progress?.state.withLock { $0.record = record }
        }
        ending.bodyBytes += chunk.readableBytes
        guard sse?.dropInjectedUsageChunk == true else {
            // The answer goes through unchanged: it is passed on first and read once this read from the provider is
            // flushed to the client (`readPassedOn`), so that reading it adds nothing to the client's wait.
            if !ending.clientGone { passOn(chunk) }
            passedOn.append(chunk)
            return
        }
        // One event of the answer may be left out: each is read before it goes.
        var out: [UInt8] = []
        chunk.withUnsafeReadableBytes { out = self.sse!.feed($0) ?? [] }
        if !ending.clientGone, !out.isEmpty { passOn(ByteBuffer(bytes: out)) }
        readProgress()
    }

    private func passOn(_ chunk: ByteBuffer) {
        guard var gathered = unwritten else {
            unwritten = chunk
            return
        }
        unwritten = nil
        gathered.writeImmutableBuffer(chunk)
        unwritten = gathered
    }

    /// Writes what this read brought for the client (without flushing).
    private func writeUnwritten() {
        guard let chunk = unwritten else { return }
        unwritten = nil
        client.writeBody(chunk)
        // A client slower than the provider: stop reading upstream until it catches up.
        if !client.isWritable { upstream?.pauseReading() }
    }

    /// Reads what was passed on unread: usage and model, and how far the answer got.
    private func readPassedOn() {
        guard !passedOn.isEmpty else { return }
        for chunk in passedOn {
            chunk.withUnsafeReadableBytes { raw in
                if sse != nil { _ = sse!.feed(raw) } else { plain!.feed(raw) }
            }
        }
        passedOn.removeAll(keepingCapacity: true)
        readProgress()
    }

    /// Shares what the answer has shown so far with the shutdown path (`InFlightCalls`); a call draining only for its
    /// usage ends once the usage is final.
    private func readProgress() {
        if let sse {
            ending.dataEvents = sse.dataEvents
            let read = ResponseReading(usage: sse.usage, model: sse.model, serviceTier: sse.serviceTier)
            let (events, bytes, final) = (sse.dataEvents, ending.bodyBytes, sse.usageIsFinal)
            progress?.state.withLock {
                $0.ending.read = read
                $0.ending.dataEvents = events
                $0.ending.bodyBytes = bytes
                $0.ending.usageIsFinal = final
            }
            if phase == .answering, ending.clientGone, sse.usageIsFinal { finish(upstreamFailed: false, answerComplete: false) }
        } else if ending.clientGone {
            let bytes = ending.bodyBytes
            progress?.state.withLock { $0.ending.bodyBytes = bytes }
        }
    }

    func upstreamReadComplete() {
        guard phase == .answering else { return }
        if !ending.clientGone {
            writeUnwritten()
            client.flush()
        }
        readPassedOn()
    }

    func upstreamEnd() {
        guard phase == .answering else { return }
        finish(upstreamFailed: false, answerComplete: true)
    }

    func upstreamFailed(_ error: any Error) {
        switch phase {
        case .forwarded:
            // A kept-alive connection the provider closed as the request went out (its idle timeout, a restart): the
            // request was not read, so it goes once more on a new connection, as browsers and Go's client do. The
            // provider's side shows as an end of stream, or as a reset or broken pipe when its socket was gone when
            // the request arrived.
            let reused = (upstream?.uses ?? 0) > 1
            upstream = nil
            if reused, !retried, Self.isConnectionLoss(error) {
                retried = true
                proxy.metrics.upstreamRetries.add(1, ordering: .relaxed)
                return send(fresh: true)
            }
            unreachable(error)
        case .answering:
            upstream = nil
            proxy.logger.warning(
                "upstream stream broke off", metadata: ["collector.provider": "\(route!.provider.name)", "error": "\(error)"])
            finish(upstreamFailed: true, answerComplete: false)
        default:
            break
        }
    }

    /// Whether `error` is a connection that went away (closed, reset, broken pipe) rather than any other failure.
    static func isConnectionLoss(_ error: any Error) -> Bool {
        switch error {
        case UpstreamError.closed, ChannelError.eof, ChannelError.ioOnClosedChannel, ChannelError.outputClosed:
            return true
        case let error as IOError:
            return error.errnoCode == ECONNRESET || error.errnoCode == EPIPE
        default:
            return false
        }
    }

    /// The client can take more: read from the provider again.
    func clientWritable() {
        if phase == .answering { upstream?.resumeReading() }
    }

    /// The client's connection closed.
    func clientLeft() {
        switch phase {
        case .readingRequest:
            // Cut off (request_read_timeout) or gone mid-request: nothing went upstream.
            phase = .done
            guard early == nil, route != nil, proxy.queue.tryReserve() else { return }
            record = CallRecord(
                route: route!, collector: proxy.config.collector.id, tags: Proxy.tags(head.headers), started: started, now: now)
            if let keyHash, let key = proxy.keys.verdict(secretHash: keyHash, now: now).key { record!.identified(keyID: key.id) }
            refuse(
                .rejectedInvalid, .requestNotRead,
                message: "the request body was not received in full (the client left, or took longer than request_read_timeout)",
                error: "request not read in time")
        case .answering where !ending.clientGone:
            ending.clientGone = true
            guard proxy.config.collector.onClientAbort == .drain else {
                return finish(upstreamFailed: false, answerComplete: false)
            }
            progress?.state.withLock { $0.ending.clientGone = true }
            upstream?.resumeReading()
            // The provider may fall silent before the usage comes: the call is logged by drain_timeout at the latest.
            drainTimer = loop.assumeIsolated().scheduleTask(in: .milliseconds(proxy.config.collector.drainTimeoutMs)) { [self] in
                drainTimer = nil
                guard phase == .answering else { return }
                ending.cutOff = "client disconnected; drain_timeout passed before the usage came"
                finish(upstreamFailed: false, answerComplete: false)
            }
        default:
            // Waiting for a slot, a body read or the provider's first byte: seen when that step ends.
            break
        }
    }

    /// Ends an answered call: the rest of its answer to the client, its upstream connection back to the pool (or
    /// closed), its line to the log. The client has its answer's end before the line is made, which it does not wait
    /// for: the call's `/metrics` counters follow within microseconds, on this event loop.
    private func finish(upstreamFailed: Bool, answerComplete: Bool) {
        guard phase == .answering else { return }
        phase = .done
        drainTimer?.cancel()
        drainTimer = nil
        ending.upstreamFailed = upstreamFailed
        if let upstream {
            self.upstream = nil
            if answerComplete { upstream.finished(reusable: answerKeepAlive) } else { upstream.close() }
        }
        // When events may be left out, each is read before it goes, and what ended without its blank line goes now.
        // An answer passed on unchanged is read after its end has gone.
        let readFirst = sse?.dropInjectedUsageChunk == true
        let rest = readFirst ? sse!.finish() : []
        if ending.clientGone {
            client.callEnded()
        } else if upstreamFailed {
            // The client must not take a broken answer for a whole one: its connection ends without a proper end.
            client.abort()
        } else {
            if !rest.isEmpty { passOn(ByteBuffer(bytes: rest)) }
            writeUnwritten()
            client.writeEnd()
        }
        if !readFirst {
            readPassedOn()
            _ = sse?.finish()
        }
        if let sse {
            ending.read = ResponseReading(usage: sse.usage, model: sse.model, serviceTier: sse.serviceTier)
            ending.streamError = sse.streamError
            ending.dataEvents = sse.dataEvents
            // A stream that ended as streams end, with nobody cut off, reported all the usage it will.
            ending.usageIsFinal = sse.usageIsFinal || (sse.completed && !ending.clientGone && !upstreamFailed)
        } else {
            ending.read = route!.adapter.readResponse(plain!)
            ending.usageIsFinal = ending.read.usage != nil || (!ending.clientGone && !upstreamFailed)
        }
        let event = record!.ended(ending, at: ContinuousClock.now)
        if let progress {
            proxy.inFlight.remove(progress)
            if progress.claim() { proxy.log(event) }
        } else {
            proxy.log(event)
        }
    }

    // MARK: Answers of the collector's own

    /// Refuses the call (it holds a slot) and logs it.
    private func refuse(
        _ outcome: UsageEvent.Outcome, _ reason: RefusalReason, message: String, error: String? = nil
    ) {
        let refusal = route!.adapter.refusal(reason, message: message)
        readPrompt()
        proxy.log(record!.refused(outcome, status: refusal.status, message: message, error: error, at: ContinuousClock.now))
        answer(refusal)
    }

    private func answer(_ refusal: (status: Int, body: [UInt8])) {
        phase = .done
        client.respond(status: refusal.status, contentType: "application/json", body: ByteBuffer(bytes: refusal.body))
    }
}

extension KeyState.Verdict {
    /// The configured key a verdict names, if any.
    var key: Key? {
        switch self {
        case .unknown: nil
        case .ok(let key), .expired(let key): key
        case .revoked(let key, _), .unavailable(let key, _): key
        }
    }
}
