import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import TallyConfig
import TallyCore
import UsageLog

/// Forwards one client call to its provider unchanged, and records one usage event for it.
///
/// The client's virtual key is replaced by the provider's real key; a refused key never reaches the provider.
/// Response bodies are streamed through chunk by chunk while usage is read on the side.
struct Proxy: Sendable {
    let config: Config
    let keys: KeyState
    let httpClient: UpstreamClients
    let queue: EventQueue
    let metrics: CollectorMetrics
    let hasher: PromptHasher
    let redactor: Redactor
    /// Real provider keys by provider name, read from the environment at start.
    let providerKeys: [String: String]
    let logger: Logger
    /// The calls whose answers are streaming (their lines are written even if their end is never seen).
    let inFlight: InFlightCalls

    static let tallyUser = HTTPField.Name("X-Tally-User")!
    static let tallyTags = HTTPField.Name("X-Tally-Tags")!

    /// Requests larger than this are refused with 413 (prompts with images can be large; this is far above them).
    static let maxRequestBytes = 64 << 20

    /// Hop-by-hop headers (RFC 9110 §7.6.1), which belong to one connection and are never forwarded.
    static let hopByHopHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
    ]
    /// Client headers never forwarded: hop-by-hop ones, the client's credentials (wherever any provider reads them),
    /// Tally's own, and what the proxy sets.
    static let droppedRequestHeaders = hopByHopHeaders.union([
        "host", "content-length", "authorization", "x-tally-user", "x-tally-tags", "accept-encoding",
    ]).union(ProviderAdapters.keyHeaders).union(billingHeaders)
    /// Client headers that choose who pays or whose resources a call reaches: the organisation decides those, in the
    /// provider's `headers:`, never a key holder.
    static let billingHeaders: Set<String> = ["openai-organization", "openai-project", "x-goog-user-project"]
    /// Upstream headers not passed back: hop-by-hop ones, and the length, which the response body states itself.
    static let droppedResponseHeaders = hopByHopHeaders.union(["content-length"])

    func respond(to request: Request, context: CollectorRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        let now = Timestamp.now()
        // The path as the provider will read it; one that could be read two ways is refused before anything else.
        let path: String
        switch PathNormalizer.normalize(request.uri.path) {
        case .success(let normalised):
            path = normalised
        case .failure(let error):
            let named = request.uri.path.split(separator: "/").first.flatMap { config.provider(named: String($0)) }
            let kind = named?.kind ?? config.defaultProvider.flatMap(config.provider(named:))?.kind ?? .openai
            return errorResponse(
                ProviderAdapters.adapter(for: kind).refusal(.badPath, message: "\(error.message): \(request.uri.path.prefix(200))"))
        }
        guard let route = Route(path: path, config: config) else {
            let kind = config.defaultProvider.flatMap(config.provider(named:))?.kind ?? .openai
            let known = config.providers.map { "/\($0.name)/" }.joined(separator: ", ")
            let message = "no provider at \(path); use one of \(known)\(config.defaultProvider != nil ? " or /v1/" : "")"
            return errorResponse(ProviderAdapters.adapter(for: kind).refusal(.unknownRoute, message: message))
        }
        let adapter = route.adapter
        // A slot in the log queue before anything else: a call the log could not take is never forwarded, and one whose
        // client left while it waited for a slot is not forwarded either.
        switch await queue.reserve(waitingAtMost: .milliseconds(config.collector.logQueueWaitMs)) {
        case .slot:
            break
        case .slotAfterWaiting:
            guard !ClientPresence.hasLeft(context.channel) else {
                queue.release()
                metrics.abandonedWhileWaiting.add(1, ordering: .relaxed)
                return errorResponse(adapter.refusal(.logUnavailable, message: "the client left while the call waited"))
            }
        case .none:
            metrics.logUnavailable.add(1, ordering: .relaxed)
            let why = queue.writerProblem.map { "it cannot write its usage log: \($0)" } ?? "its usage log queue is full"
            return errorResponse(
                adapter.refusal(.logUnavailable, message: "the collector did not forward this call because \(why); try again shortly"))
        }
        var call = CallRecord(
            route: route, collector: config.collector.id, tags: Self.tags(request.headers),
            started: started, now: now)

        // The key: refused keys never reach the provider.
        guard let secret = Self.presentedKey(request.headers, query: request.uri.query, adapter: adapter) else {
            return refuse(
                &call, .rejectedUnknownKey, .unknownKey, adapter: adapter,
                message: "no API key: send a Tally key (tk-…) as 'Authorization: Bearer' or 'x-api-key'")
        }
        switch keys.verdict(secret: secret, now: now) {
        case .unknown:
            return refuse(
                &call, .rejectedUnknownKey, .unknownKey, adapter: adapter,
                message: "the API key is not a Tally key this collector knows")
        case .revoked(let key, let entry):
            call.identified(keyID: key.id)
            let until = entry.until.map { " until \(Timestamp.format(milliseconds: $0))" } ?? ""
            return refuse(
                &call, .rejectedRevoked, .revoked(entry.kind), adapter: adapter,
                message: "key \(key.id) is revoked\(until): \(entry.message)")
        case .expired(let key):
            call.identified(keyID: key.id)
            return refuse(
                &call, .rejectedRevoked, .revoked(.expired), adapter: adapter,
                message: "key \(key.id) expired at \(Timestamp.format(milliseconds: key.expires ?? now))")
        case .unavailable(let key, let reason):
            // Fail closed: without a list to trust, no key is known not to be revoked.
            call.identified(keyID: key.id)
            return refuse(
                &call, .rejectedInvalid, .revocationsUnavailable, adapter: adapter,
                message: "the collector cannot check revocations (\(reason)); try again shortly",
                error: "revocation list unavailable")
        case .ok(let key):
            call.identified(keyID: key.id)
            // The endpoint policy: the real key reaches only what is metered, harmless, or allowed.
            let access = adapter.access(method: request.method.rawValue, path: route.path, upstreamPath: route.upstreamPath[...])
            if case .unmetered(let group) = access {
                guard access.isAllowed(provider: route.provider.allow, key: key.allow) else {
                    return refuse(
                        &call, .rejectedInvalid, .endpointNotAllowed, adapter: adapter,
                        message:
                            "\(request.method.rawValue) \(path.prefix(200)) is a '\(group)' endpoint, which Tally does not meter; it is not allowed for key \(key.id) (an operator may add '\(group)' to the provider's or the key's allow list)",
                        error: "endpoint not allowed: \(group)")
                }
                call.unmetered()
            }
            return try await forward(request, route: route, key: key, call: call)
        }
    }

    // MARK: Forwarding

    private func forward(_ request: Request, route: Route, key: Key, call: CallRecord) async throws -> Response {
        var call = call
        var request = request
        let adapter = route.adapter
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: Self.maxRequestBytes)
        } catch is NIOTooManyBytesError {
            return refuse(
                &call, .rejectedInvalid, .requestTooLarge, adapter: adapter,
                message: "the request body is larger than \(Self.maxRequestBytes >> 20) MiB")
        } catch {
            // The client left, or took longer than request_read_timeout: nothing went upstream.
            return refuse(
                &call, .rejectedInvalid, .requestNotRead, adapter: adapter,
                message: "the request body was not received in full (the client left, or took longer than request_read_timeout)",
                error: "request not read in time")
        }

        // Read what the log needs from the request. A body that is not a readable JSON object goes through as it is to
        // an unmetered path, and is refused on a metered one (its call could not be metered). A large body is parsed,
        // hashed and redacted off the event loop, so that the loop's other connections do not wait for it.
        var upstreamBody = body
        var injectedUsage = false
        let bytes = Array(body.readableBytesView)
        let this = self
        let read =
            bytes.count >= Self.offLoopBodyBytes
            ? await offLoop { this.readBody(bytes, route: route, key: key) } : readBody(bytes, route: route, key: key)
        if let read {
            call.requestRead(read.reading, fingerprint: read.fingerprint, preview: read.preview)
            if let rewritten = read.reading.rewrittenBody {
                upstreamBody = ByteBuffer(bytes: rewritten)
                injectedUsage = true
            }
        } else if route.endpoint != .other, !bytes.isEmpty || request.method == .post {
            // A metered call whose body Tally cannot read would go through unmetered: refused instead.
            return refuse(
                &call, .rejectedInvalid, .unreadableBody, adapter: adapter,
                message: "the request body is not a JSON object Tally can read (at most \(JSONValue.maximumDepth) levels deep, valid UTF-8)"
            )
        }
        if let headerUser = request.headers[Self.tallyUser], !headerUser.isEmpty { call.endUser(headerUser) }

        guard let realKey = providerKeys[route.provider.name] else {
            return refuse(
                &call, .upstreamError, .noProviderKey, adapter: adapter,
                message: "the collector has no key for provider \(route.provider.name) (set \(route.provider.apiKeyEnv))")
        }
        let query = adapter.upstreamQuery(request.uri.query.map { Substring($0) })
        var upstream = HTTPClientRequest(url: route.provider.baseURL + route.upstreamPath + (query.map { "?" + $0 } ?? ""))
        upstream.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.droppedRequestHeaders.contains(field.name.canonicalName) {
            upstream.headers.add(name: field.name.rawName, value: field.value)
        }
        upstream.headers.replaceOrAdd(name: "accept-encoding", value: "identity")
        for (name, value) in route.provider.headers { upstream.headers.replaceOrAdd(name: name, value: value) }
        let credential = adapter.credential(realKey: realKey)
        upstream.headers.replaceOrAdd(name: credential.name, value: credential.value)
        if body.readableBytes > 0 || request.method == .post || request.method == .put || request.method == .patch {
            upstream.body = .bytes(upstreamBody)
        }

        let beforeUpstream = ContinuousClock.now
        let response: HTTPClientResponse
        do {
            response = try await httpClient.current.execute(
                upstream, timeout: .milliseconds(config.collector.upstreamCallTimeoutMs), logger: logger)
        } catch {
            logger.warning("upstream unreachable", metadata: ["collector.provider": "\(route.provider.name)", "error": "\(error)"])
            return refuse(
                &call, .upstreamError, .upstreamUnreachable, adapter: adapter,
                message: "the collector could not reach \(route.provider.name)", error: "upstream unreachable")
        }
        let afterUpstream = ContinuousClock.now
        metrics.observeUpstream(seconds: (afterUpstream - beforeUpstream).seconds)

        var headers = HTTPFields()
        var contentType = ""
        for header in response.headers {
            let lowercased = header.name.lowercased()
            guard !Self.droppedResponseHeaders.contains(lowercased) else { continue }
            if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
            if lowercased == "content-type" { contentType = header.value.lowercased() }
        }
        let isStream = contentType.hasPrefix("text/event-stream")
        call.forwarded(status: Int(response.status.code), streamed: isStream)
        // Keep the length when the body goes through unchanged.
        var contentLength: Int?
        if !injectedUsage, let length = response.headers.first(name: "content-length").flatMap(Int.init) { contentLength = length }

        let finalCall = call
        let classified = route.path
        let injected = injectedUsage
        metrics.observeAdded(seconds: ((beforeUpstream - call.started) + (ContinuousClock.now - afterUpstream)).seconds)
        // The server calls the body's closure only once it has written the answer's head; a client gone by then (a
        // reset while the provider worked) gets neither, but the provider bills the call: it is then read and logged
        // as the closure would have, with the client gone from the start.
        let answer = PendingAnswer {
            Task {
                var gone: any ResponseBodyWriter = ClientGoneWriter()
                try? await this.stream(
                    response.body, to: &gone, adapter: adapter, path: classified, isStream: isStream, injectedUsage: injected,
                    call: finalCall)
            }
        }
        let responseBody = ResponseBody(contentLength: contentLength) { writer in
            answer.started()
            try await this.stream(
                response.body, to: &writer, adapter: adapter, path: classified, isStream: isStream, injectedUsage: injected,
                call: finalCall)
        }
        return Response(status: HTTPResponse.Status(code: Int(response.status.code)), headers: headers, body: responseBody)
    }

    /// Passes the upstream body to the client chunk by chunk, reads usage on the side (events of a stream, or chosen
    /// members of a plain body, each parser changed in place), then logs the call.
    ///
    /// When the client leaves mid-answer, the provider still bills the whole call: by default (`on_client_abort:
    /// drain`) the rest of the answer is read, not kept, until its usage arrives or it ends, for at most
    /// `drain_timeout`; with `cancel` the upstream is closed at once and the usage estimated. When the upstream breaks
    /// off, the client's answer is broken off too (the connection is closed without a proper end), so that its SDK
    /// raises instead of taking half an answer for a whole one.
    private func stream(
        _ body: HTTPClientResponse.Body, to writer: inout any ResponseBodyWriter, adapter: any ProviderAdapter,
        path: ClassifiedPath, isStream: Bool, injectedUsage: Bool, call: CallRecord
    ) async throws {
        var call = call
        var sse = isStream ? SSEUsageParser(reader: adapter.streamReader(), dropInjectedUsageChunk: injectedUsage) : nil
        var plain = isStream ? nil : adapter.responseCapture(path: path)
        let progress = inFlight.register(call)
        defer { inFlight.remove(progress) }
        var ending = CallRecord.Ending()
        let drain = config.collector.onClientAbort == .drain
        let drainTimeout = Duration.milliseconds(config.collector.drainTimeoutMs)
        var drainDeadline: ContinuousClock.Instant?
        var sawFirstByte = false
        do {
            for try await chunk in body {
                if isStream, !sawFirstByte {
                    sawFirstByte = true
                    call.firstByte(at: ContinuousClock.now)
                    let record = call
                    progress.state.withLock { $0.record = record }
                }
                ending.bodyBytes += chunk.readableBytes
                var out: [UInt8]?
                chunk.withUnsafeReadableBytes { raw in
                    if sse != nil { out = sse!.feed(raw) } else { plain!.feed(raw) }
                }
                if !ending.clientGone {
                    do {
                        if let out {
                            if !out.isEmpty { try await writer.write(ByteBuffer(bytes: out)) }
                        } else {
                            try await writer.write(chunk)
                        }
                    } catch {
                        ending.clientGone = true
                        guard drain else { break }
                        drainDeadline = ContinuousClock.now + drainTimeout
                    }
                }
                if let sse {
                    let read = ResponseReading(usage: sse.usage, model: sse.model, serviceTier: sse.serviceTier)
                    let (events, bytes, final) = (sse.dataEvents, ending.bodyBytes, sse.usageIsFinal)
                    let (gone, deadline) = (ending.clientGone, drainDeadline)
                    progress.state.withLock {
                        $0.ending.read = read
                        $0.ending.dataEvents = events
                        $0.ending.bodyBytes = bytes
                        $0.ending.usageIsFinal = final
                        $0.ending.clientGone = gone
                        $0.drainDeadline = deadline
                    }
                    // Draining only for the usage: once it is final, there is nothing more to wait for.
                    if ending.clientGone, sse.usageIsFinal { break }
                } else if ending.clientGone {
                    let (bytes, deadline) = (ending.bodyBytes, drainDeadline)
                    progress.state.withLock {
                        $0.ending.bodyBytes = bytes
                        $0.ending.clientGone = true
                        $0.drainDeadline = deadline
                    }
                }
                if let drainDeadline, ContinuousClock.now >= drainDeadline { break }
            }
        } catch {
            ending.upstreamFailed = true
            logger.warning("upstream stream broke off", metadata: ["collector.provider": "\(call.provider)", "error": "\(error)"])
        }
        if sse != nil {
            let rest = sse!.finish()
            if !ending.clientGone, !ending.upstreamFailed, !rest.isEmpty { try? await writer.write(ByteBuffer(bytes: rest)) }
        }
        if let sse {
            ending.read = ResponseReading(usage: sse.usage, model: sse.model, serviceTier: sse.serviceTier)
            ending.streamError = sse.streamError
            ending.dataEvents = sse.dataEvents
            // A stream that ended as streams end, with nobody cut off, reported all the usage it will.
            ending.usageIsFinal = sse.usageIsFinal || (sse.completed && !ending.clientGone && !ending.upstreamFailed)
        } else {
            ending.read = adapter.readResponse(plain!)
            ending.usageIsFinal = ending.read.usage != nil || (!ending.clientGone && !ending.upstreamFailed)
        }
        if !ending.clientGone, !ending.upstreamFailed {
            do { try await writer.finish(nil) } catch { ending.clientGone = true }
        }

        let event = call.ended(ending, at: ContinuousClock.now)
        if progress.claim() { log(event) }
        // The client must not take a broken answer for a whole one: end its connection without a proper end.
        if ending.upstreamFailed, !ending.clientGone { throw UpstreamBrokeOff() }
    }

    /// Bodies from this size on are read on Swift's global pool rather than the connection's event loop.
    static let offLoopBodyBytes = 256 << 10

    /// What the log keeps of a request body.
    struct BodyRead: Sendable {
        var reading: RequestReading
        var fingerprint: PromptFingerprint?
        var preview: String?
    }

    /// Large bodies read on a thread that is no event loop's (what the tests check).
    static let largeBodiesReadOffLoop = Atomic<Int>(0)

    /// Parses, hashes and redacts a request body; nil when it is not a JSON object Tally can read.
    func readBody(_ bytes: [UInt8], route: Route, key: Key) -> BodyRead? {
        if bytes.count >= Self.offLoopBodyBytes, MultiThreadedEventLoopGroup.currentEventLoop == nil {
            Self.largeBodiesReadOffLoop.add(1, ordering: .relaxed)
        }
        guard let json = try? JSONValue.parse(bytes), case .object = json else { return nil }
        let reading = route.adapter.readRequest(json, bytes: bytes, path: route.path)
        let fingerprint = hasher.fingerprint(model: reading.model ?? "", request: json, fields: reading.promptFields)
        var preview: String?
        if let fingerprint, !key.privacy, config.collector.previewChars > 0 {
            do {
                preview = try redactor.preview(of: fingerprint.text, characters: config.collector.previewChars)
            } catch {
                // Fails closed: a prompt redaction could not finish on keeps no preview.
                metrics.redactionFailures.add(1, ordering: .relaxed)
                logger.warning("redaction failed; no preview kept", metadata: ["error": "\(error)"])
            }
        }
        return BodyRead(reading: reading, fingerprint: fingerprint, preview: preview)
    }

    /// An answer handed to the server: if the server drops it without writing its body (the client was gone before the
    /// head could be written), `unwritten` runs, so that the call is still read to its end and logged.
    final class PendingAnswer: Sendable {
        private let begun = Atomic<Bool>(false)
        private let unwritten: @Sendable () -> Void

        init(unwritten: @escaping @Sendable () -> Void) { self.unwritten = unwritten }

        func started() { begun.store(true, ordering: .relaxed) }

        deinit { if !begun.load(ordering: .relaxed) { unwritten() } }
    }

    /// The writer of an answer whose client is gone: every write fails, as a closed connection's would.
    struct ClientGoneWriter: ResponseBodyWriter {
        struct Gone: Error {}
        mutating func write(_ buffer: ByteBuffer) async throws { throw Gone() }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws { throw Gone() }
    }

    /// Thrown out of a response body whose upstream broke off: the server then closes the connection mid-answer.
    struct UpstreamBrokeOff: Error {}

    // MARK: Helpers

    private func refuse(
        _ call: inout CallRecord, _ outcome: UsageEvent.Outcome, _ reason: RefusalReason,
        adapter: any ProviderAdapter, message: String, error: String? = nil
    ) -> Response {
        let refusal = adapter.refusal(reason, message: message)
        log(call.refused(outcome, status: refusal.status, message: message, error: error, at: ContinuousClock.now))
        return errorResponse(refusal)
    }

    private func errorResponse(_ refusal: (status: Int, body: [UInt8])) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(
            status: HTTPResponse.Status(code: refusal.status), headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: refusal.body)))
    }

    /// Hands the call's event to the log writer, in the slot the call reserved.
    private func log(_ event: UsageEvent) {
        metrics.record(event)
        queue.send(event)
    }

    /// The virtual key from `Authorization: Bearer …`, a header the provider's clients send keys in (`x-api-key`,
    /// `api-key`, `x-goog-api-key`), or a query parameter the provider's API takes keys in (Gemini's `key`).
    static func presentedKey(_ headers: HTTPFields, query: String?, adapter: any ProviderAdapter) -> String? {
        if let auth = headers[.authorization] {
            let parts = auth.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let token = trimmed(parts[1])
                if !token.isEmpty { return token }
            }
        }
        for name in adapter.keyHeaders {
            if let field = HTTPField.Name(name), let key = headers[field].map({ trimmed(Substring($0)) }), !key.isEmpty { return key }
        }
        return adapter.presentedKey(query: query.map { Substring($0) })
    }

    /// `text` without leading and trailing spaces and tabs (Foundation's trimming is slow on the hot path).
    static func trimmed(_ text: Substring) -> String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = text.firstIndex(where: { !isBlank($0) }), let last = text.lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(text[first...last])
    }

    /// Tags from `X-Tally-Tags: k=v,k2=v2` (at most 16, each part at most 128 characters).
    static func tags(_ headers: HTTPFields) -> [String: String] {
        guard let value = headers[tallyTags] else { return [:] }
        var tags: [String: String] = [:]
        for pair in value.split(separator: ",").prefix(16) {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = trimmed(parts[0])
            let tagValue = trimmed(parts[1])
            guard !key.isEmpty else { continue }
            tags[String(key.prefix(128))] = String(tagValue.prefix(128))
        }
        return tags
    }
}
