import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import TallyConfig
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

    static let tallyUser = HTTPField.Name("X-Tally-User")!
    static let tallyTags = HTTPField.Name("X-Tally-Tags")!
    static let apiKey = HTTPField.Name("x-api-key")!

    /// Requests larger than this are refused with 413 (prompts with images can be large; this is far above them).
    static let maxRequestBytes = 64 << 20

    /// Hop-by-hop headers (RFC 9110 §7.6.1), which belong to one connection and are never forwarded.
    static let hopByHopHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
    ]
    /// Client headers never forwarded: hop-by-hop ones, the client's credentials, Tally's own, and what the proxy sets.
    static let droppedRequestHeaders = hopByHopHeaders.union([
        "host", "content-length", "authorization", "x-api-key", "x-tally-user", "x-tally-tags", "accept-encoding",
    ])
    /// Upstream headers not passed back: hop-by-hop ones, and the length, which the response body states itself.
    static let droppedResponseHeaders = hopByHopHeaders.union(["content-length"])

    /// What is known about a call as it proceeds, turned into its log event at the end.
    struct Call: Sendable {
        var event: UsageEvent
        let started: ContinuousClock.Instant
    }

    func respond(to request: Request, context: some RequestContext) async throws -> Response {
        let started = ContinuousClock.now
        let now = Timestamp.now()
        let path = request.uri.path
        guard let route = Route(path: path, config: config) else {
            let kind = config.defaultProvider.flatMap(config.provider(named:))?.kind ?? .openai
            let known = config.providers.map { "/\($0.name)/" }.joined(separator: ", ")
            return errorResponse(kind: kind, status: 404, type: "not_found_error", code: "unknown_route",
                                 message: "no provider at \(path); use one of \(known)\(config.defaultProvider != nil ? " or /v1/" : "")")
        }
        let kind = route.provider.kind
        var call = Call(event: UsageEvent(
            id: EventID.make(milliseconds: now), timestamp: now, collector: config.collector.id, key: "unknown",
            provider: route.provider.name, endpoint: route.endpoint, model: "", status: 0, outcome: .ok, stream: false,
            usage: nil, tags: Self.tags(request.headers)), started: started)

        // The key: refused keys never reach the provider.
        guard let secret = Self.presentedKey(request.headers) else {
            let (status, type, code) = ProviderError.unknownKey(kind)
            return await refuse(&call, outcome: .rejectedUnknownKey, kind: kind, status: status, type: type, code: code,
                                message: "no API key: send a Tally key (tk-…) as 'Authorization: Bearer' or 'x-api-key'")
        }
        switch keys.verdict(secret: secret, now: now) {
        case .unknown:
            let (status, type, code) = ProviderError.unknownKey(kind)
            return await refuse(&call, outcome: .rejectedUnknownKey, kind: kind, status: status, type: type, code: code,
                                message: "the API key is not a Tally key this collector knows")
        case .revoked(let key, let entry):
            call.event.key = key.id
            let (status, type, code) = ProviderError.revoked(kind, entry.kind)
            let until = entry.until.map { " until \(Timestamp.format(milliseconds: $0))" } ?? ""
            return await refuse(&call, outcome: .rejectedRevoked, kind: kind, status: status, type: type, code: code,
                                message: "key \(key.id) is revoked\(until): \(entry.message)")
        case .expired(let key):
            call.event.key = key.id
            let (status, type, code) = ProviderError.revoked(kind, .expired)
            return await refuse(&call, outcome: .rejectedRevoked, kind: kind, status: status, type: type, code: code,
                                message: "key \(key.id) expired at \(Timestamp.format(milliseconds: key.expires ?? now))")
        case .ok(let key):
            call.event.key = key.id
            return try await forward(request, route: route, key: key, call: call)
        }
    }

    // MARK: Forwarding

    private func forward(_ request: Request, route: Route, key: Key, call: Call) async throws -> Response {
        var call = call
        var request = request
        let kind = route.provider.kind
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: Self.maxRequestBytes)
        } catch {
            return await refuse(&call, outcome: .rejectedInvalid, kind: kind, status: 413, type: "invalid_request_error",
                                code: "request_too_large", message: "the request body is larger than \(Self.maxRequestBytes >> 20) MiB")
        }

        // Read what the log needs from the request; a body that is not JSON is forwarded as it is.
        var upstreamBody = body
        var injectedUsage = false
        let bytes = Array(body.readableBytesView)
        if let json = try? JSONValue.parse(bytes), case .object = json {
            let requested = json["model"]?.stringValue ?? ""
            call.event.model = requested
            call.event.stream = json["stream"]?.boolValue ?? false
            if let endUser = json["user"]?.stringValue { call.event.user = endUser }
            if let fingerprint = hasher.fingerprint(model: requested, request: json) {
                call.event.promptHash = fingerprint.hash
                call.event.promptSim = fingerprint.sim
                call.event.promptChars = fingerprint.chars
                if !key.privacy, config.collector.previewChars > 0 {
                    call.event.preview = redactor.preview(of: fingerprint.text, characters: config.collector.previewChars)
                }
            }
            if kind == .openai, call.event.stream, route.endpoint == .chatCompletions || route.endpoint == .completions,
               json["stream_options"]?["include_usage"]?.boolValue != true,
               let rewritten = Self.requestingUsage(bytes, json) {
                upstreamBody = ByteBuffer(bytes: rewritten)
                injectedUsage = true
            }
        }
        if let headerUser = request.headers[Self.tallyUser], !headerUser.isEmpty { call.event.user = headerUser }

        guard let realKey = providerKeys[route.provider.name] else {
            return await refuse(&call, outcome: .upstreamError, kind: kind, status: 502, type: "api_error", code: nil,
                                message: "the collector has no key for provider \(route.provider.name) (set \(route.provider.apiKeyEnv))")
        }
        var upstream = HTTPClientRequest(url: route.provider.baseURL + route.upstreamPath + (request.uri.query.map { "?" + $0 } ?? ""))
        upstream.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.droppedRequestHeaders.contains(field.name.canonicalName) {
            upstream.headers.add(name: field.name.rawName, value: field.value)
        }
        upstream.headers.replaceOrAdd(name: "accept-encoding", value: "identity")
        switch route.provider.kind {
        case .openai: upstream.headers.replaceOrAdd(name: "authorization", value: "Bearer \(realKey)")
        case .anthropic: upstream.headers.replaceOrAdd(name: "x-api-key", value: realKey)
        }
        if body.readableBytes > 0 || request.method == .post || request.method == .put || request.method == .patch {
            upstream.body = .bytes(upstreamBody)
        }

        let beforeUpstream = ContinuousClock.now
        let response: HTTPClientResponse
        do {
            response = try await httpClient.current.execute(upstream, timeout: .seconds(600), logger: logger)
        } catch {
            logger.warning("upstream unreachable", metadata: ["collector.provider": "\(route.provider.name)", "error": "\(error)"])
            call.event.error = "upstream unreachable"
            return await refuse(&call, outcome: .upstreamError, kind: kind, status: 502, type: "api_error", code: nil,
                                message: "the collector could not reach \(route.provider.name)")
        }
        let afterUpstream = ContinuousClock.now
        metrics.observeUpstream(seconds: (afterUpstream - beforeUpstream).seconds)

        call.event.status = Int(response.status.code)
        call.event.outcome = response.status.code >= 400 ? .upstreamError : .ok
        if response.status.code >= 400 { call.event.error = "upstream returned \(response.status.code)" }
        var headers = HTTPFields()
        var contentType = ""
        for header in response.headers {
            let lowercased = header.name.lowercased()
            guard !Self.droppedResponseHeaders.contains(lowercased) else { continue }
            if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
            if lowercased == "content-type" { contentType = header.value.lowercased() }
        }
        let isStream = contentType.hasPrefix("text/event-stream")
        if isStream { call.event.stream = true }
        // Keep the length when the body goes through unchanged.
        var contentLength: Int?
        if !injectedUsage, let length = response.headers.first(name: "content-length").flatMap(Int.init) { contentLength = length }

        let this = self
        let finalCall = call
        let injected = injectedUsage
        metrics.observeAdded(seconds: ((beforeUpstream - call.started) + (ContinuousClock.now - afterUpstream)).seconds)
        let responseBody = ResponseBody(contentLength: contentLength) { writer in
            await this.stream(response.body, to: &writer, kind: kind, isStream: isStream, injectedUsage: injected, call: finalCall)
        }
        return Response(status: HTTPResponse.Status(code: Int(response.status.code)), headers: headers, body: responseBody)
    }

    /// Passes the upstream body to the client chunk by chunk, reads usage on the side, then logs the call.
    private func stream(_ body: HTTPClientResponse.Body, to writer: inout any ResponseBodyWriter, kind: ProviderKind,
                        isStream: Bool, injectedUsage: Bool, call: Call) async {
        var call = call
        var sse = isStream ? SSEUsageParser(kind: kind, dropInjectedUsageChunk: injectedUsage) : nil
        var plain = isStream ? nil : TopLevelFieldCapture(wanted: ["usage", "model"])
        var clientGone = false
        var upstreamFailed = false
        do {
            for try await chunk in body {
                if call.event.ttftMs == nil, isStream { call.event.ttftMs = Int64((ContinuousClock.now - call.started).milliseconds) }
                var out: [UInt8]?
                chunk.withUnsafeReadableBytes { raw in
                    if sse != nil { out = sse!.feed(raw) } else { plain!.feed(raw) }
                }
                do {
                    if let out {
                        if !out.isEmpty { try await writer.write(ByteBuffer(bytes: out)) }
                    } else {
                        try await writer.write(chunk)
                    }
                } catch {
                    clientGone = true
                    break
                }
            }
        } catch {
            upstreamFailed = true
            logger.warning("upstream stream broke off", metadata: ["collector.provider": "\(call.event.provider)", "error": "\(error)"])
        }
        if var parser = sse {
            let rest = parser.finish()
            if !clientGone, !rest.isEmpty { try? await writer.write(ByteBuffer(bytes: rest)) }
            sse = parser
        }
        if !clientGone {
            do { try await writer.finish(nil) } catch { clientGone = true }
        }

        if let parser = sse {
            call.event.usage = parser.usage
            if let model = parser.model, !model.isEmpty { call.event.model = model }
            if let error = parser.streamError, call.event.outcome == .ok {
                call.event.outcome = .upstreamError
                call.event.error = String(error.prefix(200))
            }
        } else if let capture = plain {
            if let u = capture.value("usage") { call.event.usage = UsageReading.read(u, kind: kind) }
            if let model = capture.value("model")?.stringValue, !model.isEmpty { call.event.model = model }
        }
        if clientGone {
            call.event.outcome = .clientAbort
            call.event.error = "client disconnected"
        } else if upstreamFailed, call.event.outcome == .ok {
            call.event.outcome = .upstreamError
            call.event.error = "upstream stream broke off"
        }
        await log(&call)
    }

    // MARK: Helpers

    private func refuse(_ call: inout Call, outcome: UsageEvent.Outcome, kind: ProviderKind, status: Int, type: String,
                        code: String?, message: String) async -> Response {
        call.event.outcome = outcome
        call.event.status = status
        if call.event.error == nil { call.event.error = String(message.prefix(200)) }
        await log(&call)
        return errorResponse(kind: kind, status: status, type: type, code: code, message: message)
    }

    private func errorResponse(kind: ProviderKind, status: Int, type: String, code: String?, message: String) -> Response {
        let body = ProviderError.body(kind: kind, type: type, code: code, message: message)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: HTTPResponse.Status(code: status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    private func log(_ call: inout Call) async {
        call.event.latencyMs = Int64((ContinuousClock.now - call.started).milliseconds)
        if call.event.model.isEmpty { call.event.model = "unknown" }
        metrics.record(call.event)
        await queue.send(call.event)
    }

    /// The virtual key from `Authorization: Bearer …` or `x-api-key`.
    static func presentedKey(_ headers: HTTPFields) -> String? {
        if let auth = headers[.authorization] {
            let parts = auth.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let token = trimmed(parts[1])
                if !token.isEmpty { return token }
            }
        }
        if let key = headers[apiKey].map({ trimmed(Substring($0)) }), !key.isEmpty { return key }
        return nil
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

    /// The request body with `stream_options.include_usage: true`, so that the stream ends with usage.
    /// Without `stream_options`, it is inserted after the opening brace and the rest stays byte for byte.
    static func requestingUsage(_ bytes: [UInt8], _ json: JSONValue) -> [UInt8]? {
        if json["stream_options"] == nil, let brace = bytes.firstIndex(of: UInt8(ascii: "{")) {
            var out = Array(bytes[...brace])
            out.append(contentsOf: #""stream_options":{"include_usage":true},"#.utf8)
            out.append(contentsOf: bytes[(brace + 1)...])
            return out
        }
        guard case .object(var members) = json else { return nil }
        var options: [(key: String, value: JSONValue)] = []
        if case .object(let existing)? = json["stream_options"] { options = existing.filter { $0.key != "include_usage" } }
        options.append(("include_usage", .bool(true)))
        members.removeAll { $0.key == "stream_options" }
        members.append(("stream_options", .object(options)))
        var out: [UInt8] = []
        JSONWriter.appendCanonical(.object(members), to: &out)
        return out
    }
}

