import AsyncHTTPClient
import Foundation
import Synchronization
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Collector

/// The two providers added as one adapter file each: Google Gemini (native API) and Azure OpenAI.
@Suite("Gemini and Azure OpenAI, end to end on loopback")
struct GeminiAndAzureTests {
    static let geminiRequest =
        #"{"contents":[{"role":"user","parts":[{"text":"Say hello to jane.doe@example.com"}]}],"systemInstruction":{"parts":[{"text":"Be brief."}]},"generationConfig":{"temperature":0.2}}"#
    /// 100 prompt + 20 tool-use prompt tokens in; 30 candidates + 12 thoughts out; 40 of the input cached.
    static let geminiUsage = UsageEvent.Usage(input: 120, output: 42, cachedInput: 40, reasoning: 12)

    @Test func geminiCallsPlainAndStreamedAreForwardedWithTheRealKeyAndLogged() async throws {
        let model = "/gemini/v1beta/models/gemini-2.5-flash"
        let events = try await Harness.run { h in
            let plain = try await h.call(model + ":generateContent", body: Self.geminiRequest, keyHeader: "x-goog-api-key", testID: "plain")
            #expect(plain.status == 200)
            #expect(plain.body == h.mock.sent.withLock { $0["plain"] })

            // The google-genai SDK streams with ?alt=sse; a key in the query is a credential like the header.
            let sse = try await h.call(
                model + ":streamGenerateContent?alt=sse&key=\(Harness.aliceSecret)", body: Self.geminiRequest,
                key: nil, testID: "sse")
            #expect(sse.status == 200 && sse.contentType.hasPrefix("text/event-stream"))
            #expect(sse.body == h.mock.sent.withLock { $0["sse"] }, "the stream reaches the client byte for byte")

            // Without alt=sse the stream is one JSON array; its last element holds the final counts.
            let array = try await h.call(
                model + ":streamGenerateContent", body: Self.geminiRequest, keyHeader: "x-goog-api-key", testID: "array")
            #expect(array.status == 200)
            #expect(array.body == h.mock.sent.withLock { $0["array"] })

            let received = h.mock.received.withLock { $0 }
            #expect(received.count == 3)
            for call in received {
                #expect(call.headers["x-goog-api-key"] == MockUpstream.realGeminiKey)
                #expect(call.headers["authorization"] == nil)
                #expect(!(call.query ?? "").contains("key="), "the client's key never goes upstream")
                #expect(!String(decoding: call.body, as: UTF8.self).contains("tk-"))
            }
            #expect(
                received.map(\.path) == [
                    "/v1beta/models/gemini-2.5-flash:generateContent",
                    "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                    "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                ])
            #expect(received.map(\.query) == [nil, "alt=sse", nil])
        }
        #expect(events.count == 3)
        #expect(events.allSatisfy { $0.provider == "gemini" && $0.endpoint == .generateContent && $0.key == "k-alice" })
        #expect(events.allSatisfy { $0.outcome == .ok && $0.status == 200 })
        #expect(events.map(\.usage) == [Self.geminiUsage, Self.geminiUsage, Self.geminiUsage])
        #expect(events.map(\.model) == Array(repeating: MockUpstream.geminiModel, count: 3))
        #expect(events.map(\.stream) == [false, true, true])
        #expect(events[1].ttftMs != nil)
        // The prompt is contents + systemInstruction + the model from the path: the same request hashes the same.
        #expect(events.allSatisfy { $0.promptHash?.count == 64 && ($0.promptChars ?? 0) > 0 })
        #expect(Set(events.map(\.promptHash)).count == 1)
        #expect(events[0].preview == "Say hello to [EMAIL]\nBe brief.")
    }

    @Test func geminiPromptHashCoversContentsSystemInstructionAndTheModelOnly() throws {
        let hasher = PromptHasher(secret: Array("s".utf8))
        let adapter = GeminiAdapter()
        func hash(_ path: String, _ body: String) throws -> String? {
            let json = try JSONValue.parse(Array(body.utf8))
            let classified = adapter.classify(path: path[...])
            let reading = adapter.readRequest(json, bytes: Array(body.utf8), path: classified)
            return hasher.fingerprint(model: reading.model ?? "", request: json, fields: reading.promptFields)?.hash
        }
        let flash = "/v1beta/models/gemini-2.5-flash:generateContent"
        let base = try hash(flash, Self.geminiRequest)
        #expect(base != nil)
        // Generation settings are not the prompt; key order is not either.
        #expect(
            try hash(
                flash,
                #"{"generationConfig":{"temperature":0.9},"systemInstruction":{"parts":[{"text":"Be brief."}]},"contents":[{"role":"user","parts":[{"text":"Say hello to jane.doe@example.com"}]}]}"#
            ) == base)
        #expect(try hash("/v1beta/models/gemini-2.5-pro:generateContent", Self.geminiRequest) != base)
        #expect(try hash(flash, #"{"contents":[{"role":"user","parts":[{"text":"Say hello to jane.doe@example.com"}]}]}"#) != base)
    }

    @Test func geminiPathsAndUsageAreReadAsTheAPIDefinesThem() throws {
        let adapter = GeminiAdapter()
        #expect(
            adapter.classify(path: "/v1beta/models/gemini-2.5-pro:generateContent")
                == ClassifiedPath(endpoint: .generateContent, model: "gemini-2.5-pro"))
        #expect(
            adapter.classify(path: "/v1/models/gemini-2.0-flash:streamGenerateContent")
                == ClassifiedPath(endpoint: .generateContent, model: "gemini-2.0-flash", streams: true))
        #expect(adapter.classify(path: "/v1beta/models/gemini-embedding-001:embedContent").endpoint == .embeddings)
        #expect(adapter.classify(path: "/v1beta/models/gemini-2.5-pro:countTokens").endpoint == .other)
        #expect(adapter.classify(path: "/v1beta/models").endpoint == .other)
        #expect(adapter.upstreamQuery("key=tk-a&alt=sse&key=tk-b") == "alt=sse")
        #expect(adapter.upstreamQuery("key=tk-a") == nil)
        #expect(adapter.upstreamQuery("keys=1") == "keys=1")
        #expect(adapter.presentedKey(query: "alt=sse&key=tk-a%2Bb") == "tk-a+b")

        // Thinking tokens are output but not inside candidatesTokenCount; cached tokens are inside promptTokenCount.
        let metadata = try JSONValue.parse(
            Array(#"{"promptTokenCount":1000,"cachedContentTokenCount":600,"candidatesTokenCount":50,"thoughtsTokenCount":200}"#.utf8))
        #expect(GeminiAdapter.usage(metadata) == UsageEvent.Usage(input: 1000, output: 250, cachedInput: 600, reasoning: 200))
        // An embedding answer counts only the prompt.
        let embedding = try JSONValue.parse(Array(#"{"promptTokenCount":8,"totalTokenCount":8}"#.utf8))
        #expect(GeminiAdapter.usage(embedding) == UsageEvent.Usage(input: 8, output: 0))
    }

    @Test func geminiRefusalsComeInGooglesErrorShape() async throws {
        let events = try await Harness.run { h in
            let unknown = try await h.call(
                "/gemini/v1beta/models/gemini-2.5-flash:generateContent", body: Self.geminiRequest,
                key: "tk-nobody-knows-this-key-000000000000000", keyHeader: "x-goog-api-key")
            #expect(unknown.status == 401)
            let body = try JSONValue.parse(unknown.body)
            #expect(body["error"]?["code"]?.int64Value == 401 && body["error"]?["status"]?.stringValue == "UNAUTHENTICATED")
            #expect(h.mock.received.withLock { $0.isEmpty }, "a refused key never reaches the provider")
        }
        #expect(events.count == 1)
        #expect(events[0].outcome == .rejectedUnknownKey && events[0].model == "gemini-2.5-flash" && events[0].provider == "gemini")
    }

    @Test func azureDeploymentAndV1RoutesAreForwardedWithTheRealKeyAndLogged() async throws {
        let deployment = "/azure/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        let chat = #"{"messages":[{"role":"user","content":"hi"}]}"#
        let events = try await Harness.run { h in
            let plain = try await h.call(deployment, body: chat, keyHeader: "api-key", testID: "plain")
            #expect(plain.status == 200)
            #expect(plain.body == h.mock.sent.withLock { $0["plain"] })

            // A stream that did not ask for usage: Tally asks on its behalf and leaves the usage chunk out.
            let streamed = try await h.call(
                deployment, body: #"{"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
                keyHeader: "api-key", testID: "streamed")
            let upstream = String(decoding: h.mock.sent.withLock { $0["streamed"] ?? [] }, as: UTF8.self)
            let expected = upstream.components(separatedBy: "\n\n").filter { !$0.isEmpty && !$0.contains(#""choices":[],"usage""#) }
                .map { $0 + "\n\n" }.joined()
            #expect(String(decoding: streamed.body, as: UTF8.self) == expected)

            // The v1 routes name the model in the body; Authorization: Bearer works as for OpenAI.
            let v1 = try await h.call("/azure/openai/v1/chat/completions", body: #"{"model":"gpt-4o","messages":[]}"#)
            #expect(v1.status == 200)

            let received = h.mock.received.withLock { $0 }
            #expect(
                received.map(\.path) == [
                    "/openai/deployments/gpt4o-prod/chat/completions",
                    "/openai/deployments/gpt4o-prod/chat/completions", "/openai/v1/chat/completions",
                ])
            #expect(received.map(\.query) == ["api-version=2024-10-21", "api-version=2024-10-21", nil])
            #expect(received.allSatisfy { $0.headers["api-key"] == MockUpstream.realAzureKey && $0.headers["authorization"] == nil })
            #expect(try JSONValue.parse(received[1].body)["stream_options"]?["include_usage"]?.boolValue == true)
        }
        let chatUsage = UsageEvent.Usage(input: 12, output: 5, cachedInput: 4, reasoning: 2)
        #expect(events.count == 3)
        #expect(events.allSatisfy { $0.provider == "azure" && $0.endpoint == .chatCompletions && $0.outcome == .ok })
        #expect(events.map(\.usage) == [chatUsage, chatUsage, chatUsage])
        // The model is the one the response names, not the deployment.
        #expect(events.map(\.model) == ["gpt-4o-2024-11-20", "gpt-4o-mini-2024-07-18", "gpt-4o-2024-11-20"])
        #expect(events.map(\.stream) == [false, true, false])
        #expect(events.allSatisfy { $0.promptHash != nil })
    }

    @Test func anAzureCallRefusedBeforeAnyResponseIsLoggedUnderItsDeployment() async throws {
        let events = try await Harness.run { h in
            let refused = try await h.call(
                "/azure/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
                body: "{}", key: Harness.expiredSecret, keyHeader: "api-key")
            #expect(refused.status == 403)
            #expect(try JSONValue.parse(refused.body)["error"]?["code"]?.stringValue == "key_expired")
        }
        #expect(events.map(\.model) == ["gpt4o-prod"])
        #expect(events.map(\.outcome) == [.rejectedRevoked])
    }

    @Test func aGeminiStreamReadsWhereverItsChunksSplit() {
        let usage = #"{"promptTokenCount":5,"candidatesTokenCount":3,"thoughtsTokenCount":1}"#
        let stream = [
            #"data: {"candidates":[{"content":{"parts":[{"text":"a"}]},"index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1},"modelVersion":"gemini-2.5-flash"}"#,
            #"data: {"candidates":[{"content":{"parts":[{"text":"b"}]},"finishReason":"STOP","index":0}],"usageMetadata":\#(usage),"modelVersion":"gemini-2.5-flash"}"#,
        ].map { $0 + "\r\n\r\n" }.joined()
        let bytes = Array(stream.utf8)
        for cut in 0...bytes.count {
            var parser = SSEUsageParser(kind: .gemini, dropInjectedUsageChunk: false)
            for part in [bytes[..<cut], bytes[cut...]] {
                #expect(Array(part).withUnsafeBytes { parser.feed($0) } == nil)
            }
            _ = parser.finish()
            #expect(parser.usage == UsageEvent.Usage(input: 5, output: 4, reasoning: 1), "cut at \(cut)")
            #expect(parser.model == "gemini-2.5-flash" && parser.completed)
        }
    }
}
