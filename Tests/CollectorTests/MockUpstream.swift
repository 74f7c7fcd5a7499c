import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// An in-process provider that speaks the OpenAI and Anthropic APIs, plain and streamed, with known usage, and keeps
/// what it received and the exact bytes it sent so tests can compare them with what the client got.
final class MockUpstream: Sendable {
    struct Received: Sendable {
        var path: String
        var query: String?
        var headers: [String: String]
        var body: [UInt8]
    }

    static let realOpenAIKey = "sk-real-openai-key-for-tests-000000"
    static let realAnthropicKey = "sk-ant-real-anthropic-key-for-tests"
    static let realGeminiKey = "AIza-real-gemini-key-for-tests-0000"
    static let realAzureKey = "real-azure-key-for-tests-0123456789"

    let received = Mutex<[Received]>([])
    /// What was sent, keyed by the request's `x-test-id` header.
    let sent = Mutex<[String: [UInt8]]>([:])
    /// Whether a `held-head` call may have its answer: it waits (up to 30 s) until the test says so.
    let heldHeadsReleased = Mutex(false)

    // The usage every response reports, in each API's own terms.
    static let chatUsage =
        #"{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}"#
    static let completionUsage = #"{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}"#
    static let responsesUsage =
        #"{"input_tokens":20,"input_tokens_details":{"cached_tokens":8},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":29}"#
    static let embeddingUsage = #"{"prompt_tokens":8,"total_tokens":8}"#

    func respond(_ request: Request) async throws -> Response {
        var request = request
        let body = Array(try await request.collectBody(upTo: 1 << 24).readableBytesView)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let path = request.uri.path
        let query = request.uri.query
        received.withLock { $0.append(Received(path: path, query: query, headers: headers, body: body)) }
        let testID = headers["x-test-id"] ?? UUID().uuidString

        if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
            return gemini(path: path, query: query ?? "", headers: headers, id: testID)
        }
        let isAzure = path.hasPrefix("/openai/")
        let isAnthropic = path.hasSuffix("/messages") || path.contains("/messages/")
        let expectedAuth =
            isAzure
            ? headers["api-key"] == Self.realAzureKey && headers["authorization"] == nil
            : isAnthropic ? headers["x-api-key"] == Self.realAnthropicKey : headers["authorization"] == "Bearer \(Self.realOpenAIKey)"
        if !expectedAuth {
            return json(
                #"{"error":{"message":"mock: wrong upstream key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
                status: .unauthorized, id: testID)
        }
        let fields = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
        let stream = fields["stream"] as? Bool ?? false
        let includeUsage = ((fields["stream_options"] as? [String: Any])?["include_usage"] as? Bool) ?? false
        let model = fields["model"] as? String ?? "unknown"

        if model == "slow-head" {
            // The answer's head comes after a second, as a long non-streamed call's does.
            try await Task.sleep(for: .seconds(1))
        }
        if model == "held-head" {
            // The answer's head waits for the test, so that what the test does meanwhile cannot race a timer.
            let limit = ContinuousClock.now + .seconds(30)
            while !heldHeadsReleased.withLock({ $0 }), ContinuousClock.now < limit {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        if model == "fail-500" {
            return json(
                #"{"error":{"message":"mock: the server had an error","type":"server_error","param":null,"code":null}}"#,
                status: .internalServerError, id: testID)
        }
        switch path {
        case let p where p.hasSuffix("/chat/completions"):
            if model == "slow" { return slowChatStream(id: testID) }
            if !stream {
                if isAzure {
                    return json(
                        #"{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"gpt-4o-2024-11-20","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":\#(Self.chatUsage)}"#,
                        id: testID)
                }
                return json(
                    #"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":\#(Self.chatUsage)}"#,
                    id: testID)
            }
            let usageField = includeUsage ? #","usage":null"# : ""
            var events = [
                #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]\#(usageField)}"#,
                #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"lo!"},"finish_reason":null}]\#(usageField)}"#,
                #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]\#(usageField)}"#,
            ]
            if includeUsage {
                events.append(
                    #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":\#(Self.chatUsage)}"#
                )
            }
            events.append("[DONE]")
            return sse(events.map { "data: \($0)\n\n" }, id: testID)
        case let p where p.hasSuffix("/completions"):
            if !stream {
                return json(
                    #"{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"Hi","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":\#(Self.completionUsage)}"#,
                    id: testID)
            }
            var events = [
                #"{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"Hi","index":0,"logprobs":null,"finish_reason":"stop"}]\#(includeUsage ? #","usage":null"# : "")}"#
            ]
            if includeUsage {
                events.append(
                    #"{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[],"usage":\#(Self.completionUsage)}"#
                )
            }
            events.append("[DONE]")
            return sse(events.map { "data: \($0)\n\n" }, id: testID)
        case let p where p.hasSuffix("/responses"):
            if !stream {
                return json(
                    #"{"id":"resp_1","object":"response","status":"completed","model":"gpt-4.1-2025-04-14","output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hi"}]}],"usage":\#(Self.responsesUsage)}"#,
                    id: testID)
            }
            return sse(
                [
                    "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"model\":\"gpt-4.1-2025-04-14\",\"usage\":null}}\n\n",
                    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
                    "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"model\":\"gpt-4.1-2025-04-14\",\"usage\":\(Self.responsesUsage)}}\n\n",
                ], id: testID)
        case let p where p.hasSuffix("/embeddings"):
            return json(
                #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,-0.5,0.125]}],"model":"text-embedding-3-small","usage":\#(Self.embeddingUsage)}"#,
                id: testID)
        case let p where p.hasSuffix("/messages"):
            if !stream {
                return json(
                    #"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":7}}"#,
                    id: testID)
            }
            return sse(
                [
                    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n",
                    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
                    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
                    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
                    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":4}}\n\n",
                    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
                    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                ], id: testID)
        default:
            return json(#"{"object":"list","data":[]}"#, id: testID)
        }
    }

    static let geminiModel = "gemini-2.5-flash-preview-05-20"
    /// Gemini's final counts: 100 prompt tokens of which 40 cached, 20 tool-use prompt tokens, 30 candidates, 12 thoughts.
    static let geminiUsage =
        #"{"promptTokenCount":100,"cachedContentTokenCount":40,"toolUsePromptTokenCount":20,"candidatesTokenCount":30,"thoughtsTokenCount":12,"totalTokenCount":162}"#

    /// Google's Gemini API: `generateContent`, and `streamGenerateContent` as SSE (`alt=sse`) or as one JSON array.
    private func gemini(path: String, query: String, headers: [String: String], id: String) -> Response {
        guard headers["x-goog-api-key"] == Self.realGeminiKey, headers["authorization"] == nil, !query.contains("key=") else {
            return json(
                #"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#,
                status: .badRequest, id: id)
        }
        func chunk(_ text: String, usage: String, finish: Bool) -> String {
            let finishReason = finish ? #","finishReason":"STOP""# : ""
            return
                #"{"candidates":[{"content":{"parts":[{"text":"\#(text)"}],"role":"model"}\#(finishReason),"index":0}],"usageMetadata":\#(usage),"modelVersion":"\#(Self.geminiModel)","responseId":"r1"}"#
        }
        let partial =
            #"{"promptTokenCount":100,"cachedContentTokenCount":40,"toolUsePromptTokenCount":20,"candidatesTokenCount":10,"thoughtsTokenCount":12,"totalTokenCount":142}"#
        if path.hasSuffix(":generateContent") {
            return json(chunk("Hello!", usage: Self.geminiUsage, finish: true), id: id)
        }
        let chunks = [chunk("Hel", usage: partial, finish: false), chunk("lo!", usage: Self.geminiUsage, finish: true)]
        if query.contains("alt=sse") {
            return sse(chunks.map { "data: \($0)\r\n\r\n" }, id: id)
        }
        return json("[" + chunks.joined(separator: ",\r\n") + "]", id: id)
    }

    private func json(_ text: String, status: HTTPResponse.Status = .ok, id: String) -> Response {
        sent.withLock { $0[id] = Array(text.utf8) }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// Each event as its own chunk, with a short pause, as a real stream arrives.
    private func sse(_ events: [String], id: String) -> Response {
        sent.withLock { $0[id] = Array(events.joined().utf8) }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                for event in events {
                    try await writer.write(ByteBuffer(string: event))
                    try await Task.sleep(for: .milliseconds(5))
                }
                try await writer.finish(nil)
            })
    }

    /// A chat stream of 40 chunks 50 ms apart, for client aborts and shutdown with calls in flight.
    private func slowChatStream(id: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                for i in 0..<40 {
                    try await writer.write(
                        ByteBuffer(
                            string:
                                "data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"model\":\"slow-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(i) \"}}],\"usage\":null}\n\n"
                        ))
                    try await Task.sleep(for: .milliseconds(50))
                }
                try await writer.write(
                    ByteBuffer(
                        string:
                            "data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"model\":\"slow-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":40,\"total_tokens\":70}}\n\ndata: [DONE]\n\n"
                    ))
                try await writer.finish(nil)
            })
    }

    /// Runs the mock on a free port until the surrounding task is cancelled; `onPort` gets the port.
    func run(onPort: @escaping @Sendable (Int) async -> Void) async throws {
        let app = Application(
            responder: CallbackResponder<BasicRequestContext> { request, _ in try await self.respond(request) },
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in await onPort(channel.localAddress!.port!) },
            logger: {
                var logger = Logger(label: "mock-upstream")
                logger.logLevel = .critical
                return logger
            }()
        )
        try await app.run()
    }
}
