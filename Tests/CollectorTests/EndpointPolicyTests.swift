import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Synchronization
import Testing
import UsageLog

@testable import Collector

/// The endpoint policy (`docs/collector.md`): the real provider key reaches only what Tally meters, harmless reads,
/// and the groups the config allows, which are logged as `unmetered`.
@Suite struct EndpointPolicyTests {
    @Test func groupsAreNamedByThePathsFirstSegmentAfterTheVersion() {
        let cases: [(String, String)] = [
            ("/v1/files", "files"), ("/v1/files/file-abc/content", "files"), ("/v1/fine_tuning/jobs", "fine_tuning"),
            ("/v1/images/generations", "images"), ("/v1/audio/speech", "audio"), ("/v1/vector_stores/vs_1", "vector_stores"),
            ("/v1/chat/completions/chatcmpl-1", "chat"), ("/files", "files"), ("/openai/deployments/d1/images/generations", "images"),
            ("/openai/v1/batches", "batches"), ("/openai/files", "files"), ("/v1/models/ft:gpt-4o:acme", "models"),
            ("/v1beta/files", "files"), ("/v1beta/models", "models"), ("/v1", "root"), ("/", "root"),
        ]
        for (path, group) in cases { #expect(EndpointGroups.group(of: path[...]) == group, "\(path)") }
        #expect(GeminiAdapter().endpointGroup(of: "/v1beta/models/gemini-2.5-pro:batchGenerateContent") == "batchGenerateContent")
        #expect(GeminiAdapter().endpointGroup(of: "/v1beta/tunedModels/t1:generateText") == "generateText")
        #expect(AnthropicAdapter().endpointGroup(of: "/v1/messages/batches/msgbatch_1/results") == "batches")
    }

    @Test func meteredCallsAndHarmlessReadsNeedNoAllowing() {
        func access(_ adapter: any ProviderAdapter, _ method: String, _ path: Substring) -> EndpointAccess {
            adapter.access(method: method, path: adapter.classify(path: path), upstreamPath: path)
        }
        let openai = OpenAIAdapter()
        #expect(access(openai, "POST", "/v1/chat/completions") == .metered)
        #expect(access(openai, "POST", "/v1/responses") == .metered)
        #expect(access(openai, "GET", "/v1/chat/completions") == .unmetered(group: "chat"), "lists stored completions")
        #expect(access(openai, "GET", "/v1/models") == .harmless)
        #expect(access(openai, "GET", "/v1/models/gpt-4o") == .harmless)
        #expect(access(openai, "DELETE", "/v1/models/ft:gpt-4o:acme") == .unmetered(group: "models"), "deletes a fine-tuned model")
        #expect(access(openai, "POST", "/v1/moderations") == .harmless)
        #expect(access(openai, "GET", "/v1/responses/resp_1") == .unmetered(group: "responses"))
        let anthropic = AnthropicAdapter()
        #expect(access(anthropic, "POST", "/v1/messages") == .metered)
        #expect(access(anthropic, "POST", "/v1/messages/count_tokens") == .harmless)
        #expect(access(anthropic, "POST", "/v1/messages/batches") == .unmetered(group: "batches"))
        let gemini = GeminiAdapter()
        #expect(access(gemini, "POST", "/v1beta/models/gemini-2.5-pro:generateContent") == .metered)
        #expect(access(gemini, "POST", "/v1beta/models/gemini-2.5-pro:countTokens") == .harmless)
        #expect(access(gemini, "GET", "/v1beta/models") == .harmless)
        #expect(access(gemini, "POST", "/v1beta/cachedContents") == .unmetered(group: "cachedContents"))
        let azure = AzureOpenAIAdapter()
        #expect(access(azure, "POST", "/openai/deployments/d1/chat/completions") == .metered)
        #expect(access(azure, "POST", "/openai/deployments/d1/audio/transcriptions") == .unmetered(group: "audio"))

        let files = EndpointAccess.unmetered(group: "files")
        #expect(!files.isAllowed(provider: [], key: []))
        #expect(files.isAllowed(provider: ["files"], key: []) && files.isAllowed(provider: [], key: ["files"]))
        #expect(files.isAllowed(provider: [], key: ["all"]) && !files.isAllowed(provider: ["batches"], key: ["images"]))
    }

    /// What a key holder could do with the organisation's real key before: none of it reaches the provider now.
    @Test func unmeteredEndpointsAreRefusedInTheProvidersShape() async throws {
        let events = try await Harness.run { h in
            let refusedOpenAI: [(HTTPMethod, String)] = [
                (.POST, "/openai/v1/files"), (.GET, "/openai/v1/files"), (.DELETE, "/openai/v1/files/file-other-team"),
                (.POST, "/openai/v1/batches"), (.POST, "/openai/v1/images/generations"), (.POST, "/openai/v1/audio/speech"),
                (.POST, "/openai/v1/fine_tuning/jobs"), (.DELETE, "/openai/v1/vector_stores/vs_1"),
                (.DELETE, "/openai/v1/models/ft:gpt-4o:acme"), (.GET, "/v1/chat/completions"),
                (.POST, "/azure/openai/deployments/d1/images/generations"),
            ]
            for (method, path) in refusedOpenAI {
                let refused = try await h.call(path, body: "{}", method: method)
                #expect(refused.status == 403, "\(method) \(path)")
                let error = (try JSONSerialization.jsonObject(with: Data(refused.body)) as? [String: Any])?["error"] as? [String: Any]
                #expect(error?["code"] as? String == "endpoint_not_allowed", "\(path)")
                #expect((error?["message"] as? String)?.contains("Tally does not meter") == true)
            }
            let gemini = try await h.call(
                "/gemini/v1beta/models/gemini-2.5-pro:batchGenerateContent", body: "{}", keyHeader: "x-goog-api-key")
            #expect(gemini.status == 403 && String(decoding: gemini.body, as: UTF8.self).contains("PERMISSION_DENIED"))
            #expect(h.mock.received.withLock { $0 }.isEmpty, "nothing reached the provider")
        }
        #expect(events.count == 12)
        #expect(events.allSatisfy { $0.outcome == .rejectedInvalid && $0.status == 403 && $0.key == "k-alice" })
        #expect(events.contains { $0.error == "endpoint not allowed: files" })
        #expect(events.contains { $0.error == "endpoint not allowed: batchGenerateContent" })
    }

    @Test func harmlessReadsGoThroughAndAllowedGroupsAreLoggedUnmetered() async throws {
        let events = try await Harness.run { h in
            let models = try await h.call("/openai/v1/models", body: "", method: .GET)
            #expect(models.status == 200)
            let counted = try await h.call(
                "/anthropic/v1/messages/count_tokens", body: #"{"model":"claude-sonnet-4-5","messages":[]}"#, anthropicStyle: true)
            #expect(counted.status != 403)
            // The key's entry allows files; the provider entry allows Anthropic's batches for every key.
            let files = try await h.call("/openai/v1/files", body: "{}", key: Harness.filesSecret, method: .GET)
            let batches = try await h.call("/openai/v1/batches", body: "{}", key: Harness.filesSecret)
            let anthropicBatches = try await h.call("/anthropic/v1/messages/batches", body: "{}", anthropicStyle: true)
            #expect(files.status == 200 && batches.status == 403 && anthropicBatches.status != 403)
            let paths = h.mock.received.withLock { $0 }.map(\.path)
            #expect(paths == ["/v1/models", "/v1/messages/count_tokens", "/v1/files", "/v1/messages/batches"])
        }
        let byPath = Dictionary(grouping: events, by: \.outcome)
        #expect(byPath[.ok]?.count == 2, "harmless reads are ordinary calls")
        #expect(byPath[.unmetered]?.map(\.key).sorted() == ["k-alice", "k-files"])
        #expect(byPath[.rejectedInvalid]?.first?.error == "endpoint not allowed: batches")
    }
}
