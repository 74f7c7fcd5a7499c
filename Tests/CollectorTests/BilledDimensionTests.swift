import Foundation
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Collector

/// What a provider bills beyond the five token counts, read from its answers wherever the chunks split: the served
/// tier, one-hour cache writes, server-side web searches, OpenAI's cache writes.
@Suite("Billed dimensions in provider answers")
struct BilledDimensionTests {
    /// Feeds `text` to a stream parser in chunks of `size` bytes.
    func stream(_ text: String, kind: ProviderKind, size: Int) -> SSEUsageParser {
        var parser = SSEUsageParser(kind: kind, dropInjectedUsageChunk: false)
        let bytes = Array(text.utf8)
        for start in stride(from: 0, to: bytes.count, by: size) {
            _ = bytes[start..<min(start + size, bytes.count)].withUnsafeBytes { parser.feed($0) }
        }
        _ = parser.finish()
        return parser
    }

    /// Feeds a plain body to the adapter's capture in chunks of `size` bytes and reads it.
    func plain(_ body: String, kind: ProviderKind, endpoint: UsageEvent.Endpoint, size: Int) -> ResponseReading {
        let adapter = ProviderAdapters.adapter(for: kind)
        var capture = adapter.responseCapture(path: ClassifiedPath(endpoint: endpoint))
        let bytes = Array(body.utf8)
        for start in stride(from: 0, to: bytes.count, by: size) {
            bytes[start..<min(start + size, bytes.count)].withUnsafeBytes { capture.feed($0) }
        }
        return adapter.readResponse(capture)
    }

    static let anthropicUsage =
        #"{"input_tokens":10,"cache_creation_input_tokens":400,"cache_read_input_tokens":50,"output_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":300},"server_tool_use":{"web_search_requests":2},"service_tier":"priority"}"#
    static let anthropicExpected = UsageEvent.Usage(
        input: 460, output: 30, cachedInput: 50, cacheWrite: 400, reasoning: 0, cacheWrite1h: 300, webSearchRequests: 2)

    @Test func anthropicPlainAnswer() {
        let body =
            #"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"hi"}],"usage":"#
            + Self.anthropicUsage + "}"
        for size in [1, 7, 64, 4096] {
            let read = plain(body, kind: .anthropic, endpoint: .messages, size: size)
            #expect(read == ResponseReading(usage: Self.anthropicExpected, model: "claude-sonnet-4-5-20250929", serviceTier: "priority"))
        }
    }

    /// `message_start` carries the input side and the tier; the last `message_delta` the output and the searches.
    @Test func anthropicStream() {
        let text = [
            #"event: message_start"# + "\n"
                + #"data: {"type":"message_start","message":{"model":"claude-sonnet-4-5","usage":{"input_tokens":10,"cache_creation_input_tokens":400,"cache_read_input_tokens":50,"output_tokens":1,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":300},"service_tier":"priority"}}}"#,
            #"event: message_delta"# + "\n"
                + #"data: {"type":"message_delta","usage":{"output_tokens":30,"server_tool_use":{"web_search_requests":2}}}"#,
            #"event: message_stop"# + "\n" + #"data: {"type":"message_stop"}"#,
        ].map { $0 + "\n\n" }.joined()
        for size in [1, 5, 33, 4096] {
            let parser = stream(text, kind: .anthropic, size: size)
            #expect(parser.usage == Self.anthropicExpected, "chunks of \(size)")
            #expect(parser.serviceTier == "priority")
        }
    }

    @Test func openAIChatTierPlainAndStreamed() {
        let body =
            #"{"id":"c","object":"chat.completion","model":"gpt-5-2025-08-07","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":30,"cache_write_tokens":50}},"service_tier":"flex"}"#
        let read = plain(body, kind: .openai, endpoint: .chatCompletions, size: 9)
        #expect(read.serviceTier == "flex")
        #expect(
            read.usage == UsageEvent.Usage(input: 100, output: 20, cachedInput: 30, cacheWrite: 50), "a cache-write count where reported")
        let text = [
            #"data: {"id":"c","object":"chat.completion.chunk","model":"gpt-5-2025-08-07","service_tier":"priority","choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}"#,
            #"data: {"id":"c","object":"chat.completion.chunk","model":"gpt-5-2025-08-07","service_tier":"priority","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4}}"#,
            "data: [DONE]",
        ].map { $0 + "\n\n" }.joined()
        for size in [1, 11, 4096] {
            let parser = stream(text, kind: .openai, size: size)
            #expect(parser.serviceTier == "priority" && parser.usage?.input == 9)
        }
        // Azure OpenAI reads the same shapes.
        #expect(plain(body, kind: .azure, endpoint: .chatCompletions, size: 13).serviceTier == "flex")
    }

    /// Responses: each `web_search_call` output item is one billed search. A message text that quotes the same words
    /// is not a search.
    @Test func openAIResponsesWebSearches() {
        let output =
            #"[{"type":"web_search_call","id":"ws_1","status":"completed"},{"type": "web_search_call", "id":"ws_2","status":"completed"},"#
            + #"{"type":"message","content":[{"type":"output_text","text":"I ran \"type\":\"web_search_call\" twice","annotations":[]}]}]"#
        let usage =
            #"{"input_tokens":20,"input_tokens_details":{"cached_tokens":0},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":0}}"#
        let body =
            #"{"id":"resp_1","object":"response","model":"gpt-5","service_tier":"default","output":"# + output + #","usage":"# + usage + "}"
        for size in [1, 3, 17, 4096] {
            let read = plain(body, kind: .openai, endpoint: .responses, size: size)
            #expect(read.usage == UsageEvent.Usage(input: 20, output: 9, webSearchRequests: 2), "chunks of \(size)")
            #expect(read.serviceTier == "default")
        }
        let completed =
            #"data: {"type":"response.completed","response":{"id":"resp_1","model":"gpt-5","service_tier":"default","output":"# + output
            + #","usage":"# + usage + "}}\n\n"
        let parser = stream(completed, kind: .openai, size: 10)
        #expect(parser.usage == UsageEvent.Usage(input: 20, output: 9, webSearchRequests: 2))
        #expect(parser.serviceTier == "default")
        // Chat completions are not counted this way.
        #expect(plain(body, kind: .openai, endpoint: .chatCompletions, size: 4096).usage?.webSearchRequests == 0)
    }
}
