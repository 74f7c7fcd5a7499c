import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Collector

@Suite("Collector proxy, end to end on loopback")
struct ProxyTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to jane.doe@example.com"}]}"#

    @Test func logsExactUsageForEveryEndpointAndMode() async throws {
        let events = try await Harness.run { h in
            let calls: [(String, String, Bool)] = [
                ("/openai/v1/chat/completions", Self.chat, false),
                ("/v1/chat/completions", #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#, false),
                (
                    "/openai/v1/chat/completions",
                    #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
                    false
                ),
                ("/openai/v1/completions", #"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi"}"#, false),
                ("/openai/v1/completions", #"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi","stream":true}"#, false),
                ("/openai/v1/responses", #"{"model":"gpt-4.1","input":"Say hi"}"#, false),
                ("/openai/v1/responses", #"{"model":"gpt-4.1","input":"Say hi","stream":true}"#, false),
                ("/openai/v1/embeddings", #"{"model":"text-embedding-3-small","input":"hello"}"#, false),
                (
                    "/anthropic/v1/messages",
                    #"{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#, true
                ),
                (
                    "/anthropic/v1/messages",
                    #"{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#, true
                ),
            ]
            for (i, (path, body, anthropic)) in calls.enumerated() {
                let result = try await h.call(
                    path, body: body, anthropicStyle: anthropic,
                    headers: ["X-Tally-User": "end-user-\(i)", "X-Tally-Tags": "env=test, n=\(i)"])
                #expect(result.status == 200, "\(path): \(String(decoding: result.body, as: UTF8.self))")
            }
        }
        #expect(events.count == 10)
        let u = events.map(\.usage)
        let chat = UsageEvent.Usage(input: 12, output: 5, cachedInput: 4, reasoning: 2)
        #expect(u[0] == chat && u[1] == chat && u[2] == chat)
        #expect(u[3] == UsageEvent.Usage(input: 7, output: 3) && u[4] == UsageEvent.Usage(input: 7, output: 3))
        let responses = UsageEvent.Usage(input: 20, output: 9, cachedInput: 8, reasoning: 3)
        #expect(u[5] == responses && u[6] == responses)
        #expect(u[7] == UsageEvent.Usage(input: 8, output: 0))
        let messages = UsageEvent.Usage(input: 18, output: 7, cachedInput: 5, cacheWrite: 3)
        #expect(u[8] == messages && u[9] == messages)

        #expect(
            events.map(\.endpoint) == [
                .chatCompletions, .chatCompletions, .chatCompletions, .completions, .completions,
                .responses, .responses, .embeddings, .messages, .messages,
            ])
        #expect(events.map(\.stream) == [false, true, true, false, true, false, true, false, false, true])
        #expect(
            events.map(\.model) == [
                "gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18",
                "gpt-3.5-turbo-instruct", "gpt-3.5-turbo-instruct", "gpt-4.1-2025-04-14", "gpt-4.1-2025-04-14",
                "text-embedding-3-small", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929",
            ])
        #expect(events.allSatisfy { $0.outcome == .ok && $0.status == 200 && $0.key == "k-alice" && $0.collector == "test" })
        #expect(events.map(\.provider) == Array(repeating: "openai", count: 8) + ["anthropic", "anthropic"])
        #expect(events.allSatisfy { $0.promptHash?.count == 64 && $0.promptSim != nil && ($0.promptChars ?? 0) > 0 })
        #expect(events[0].user == "end-user-0" && events[3].tags == ["env": "test", "n": "3"])
        #expect(events.filter(\.stream).allSatisfy { $0.ttftMs != nil })
        // The preview is redacted.
        #expect(events[0].preview == "Say hello to [EMAIL]")
    }

    @Test func clientsGetTheProvidersBytesAndTheProviderGetsTheRealKey() async throws {
        _ = try await Harness.run { h in
            let plain = try await h.call("/openai/v1/chat/completions", body: Self.chat, testID: "plain")
            #expect(plain.body == h.mock.sent.withLock { $0["plain"] })

            let asked = #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#
            let streamed = try await h.call("/openai/v1/chat/completions", body: asked, testID: "asked")
            #expect(streamed.body == h.mock.sent.withLock { $0["asked"] }, "a client that asked for usage gets the usage chunk")

            // A client that did not ask gets every chunk but the injected usage one, byte for byte.
            let notAsked = #"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#
            let injected = try await h.call("/openai/v1/chat/completions", body: notAsked, testID: "injected")
            let upstream = String(decoding: h.mock.sent.withLock { $0["injected"] ?? [] }, as: UTF8.self)
            let events = upstream.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            let expected = events.filter { !$0.contains(#""choices":[],"usage""#) }.map { $0 + "\n\n" }.joined()
            #expect(events.count == 5 && expected.utf8.count < upstream.utf8.count)
            #expect(String(decoding: injected.body, as: UTF8.self) == expected)
            #expect(injected.contentType.hasPrefix("text/event-stream"))

            let anthropic = try await h.call(
                "/anthropic/v1/messages", body: #"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#, anthropicStyle: true,
                testID: "anthropic")
            #expect(anthropic.body == h.mock.sent.withLock { $0["anthropic"] })

            let received = h.mock.received.withLock { $0 }
            #expect(
                received.allSatisfy { r in
                    let sawVirtual = r.headers.values.contains { $0.contains("tk-test") }
                    return !sawVirtual
                }, "the virtual key never reaches the provider")
            #expect(
                received.filter { $0.path.hasSuffix("/messages") }.allSatisfy {
                    $0.headers["x-api-key"] == MockUpstream.realAnthropicKey && $0.headers["authorization"] == nil
                })
            // include_usage was added only where the client had not asked, and the rest of the body is unchanged.
            let injectedBody = String(decoding: received.first { $0.headers["x-test-id"] == "injected" }!.body, as: UTF8.self)
            #expect(injectedBody == #"{"stream_options":{"include_usage":true},"model":"gpt-4o-mini","stream":true,"messages":[]}"#)
            let askedBody = received.first { $0.headers["x-test-id"] == "asked" }!.body
            #expect(askedBody == Array(asked.utf8))
        }
    }

    @Test func unknownMissingAndExpiredKeysAreRefusedInTheProvidersShape() async throws {
        let events = try await Harness.run { h in
            let unknown = try await h.call("/openai/v1/chat/completions", body: Self.chat, key: "tk-nobody-knows-this-key-000000000000000")
            #expect(unknown.status == 401)
            let error = try JSONSerialization.jsonObject(with: Data(unknown.body)) as? [String: Any]
            let detail = error?["error"] as? [String: Any]
            #expect(detail?["code"] as? String == "invalid_api_key" && detail?["type"] as? String == "invalid_request_error")
            #expect(detail?.keys.sorted() == ["code", "message", "param", "type"])
            #expect(!String(decoding: unknown.body, as: UTF8.self).contains("tk-nobody"), "the secret never appears in an error")

            let anthropic = try await h.call(
                "/anthropic/v1/messages", body: "{}", key: "tk-nobody-knows-this-key-000000000000000", anthropicStyle: true)
            let shape = try JSONSerialization.jsonObject(with: Data(anthropic.body)) as? [String: Any]
            #expect(anthropic.status == 401 && shape?["type"] as? String == "error")
            #expect((shape?["error"] as? [String: Any])?["type"] as? String == "authentication_error")

            let missing = try await h.call("/openai/v1/chat/completions", body: Self.chat, key: nil)
            #expect(missing.status == 401)
            let noRoute = try await h.call("/nowhere/v1/chat", body: "{}")
            #expect(noRoute.status == 404)
            let expired = try await h.call("/openai/v1/chat/completions", body: Self.chat, key: Harness.expiredSecret)
            #expect(expired.status == 403)
            #expect(String(decoding: expired.body, as: UTF8.self).contains("key k-expired expired at 2020-01-01T00:00:00.000Z"))
            #expect(h.mock.received.withLock { $0.isEmpty }, "nothing reached the provider")
        }
        #expect(events.map(\.outcome) == [.rejectedUnknownKey, .rejectedUnknownKey, .rejectedUnknownKey, .rejectedRevoked])
        #expect(events.prefix(3).allSatisfy { $0.key == "unknown" && $0.usage == nil && $0.status == 401 })
        #expect(events.last?.key == "k-expired" && events.last?.status == 403)
    }

    @Test func revocationsApplyWithinTheReloadIntervalAndACorruptFileKeepsTheOldList() async throws {
        let events = try await Harness.run { h in
            #expect(try await h.call("/openai/v1/chat/completions", body: Self.chat, key: Harness.bobSecret).status == 200)

            let until = Timestamp.parse("2099-12-01T00:00:00Z")!
            try h.writeRevocations(
                RevocationList(entries: [
                    .init(keyID: "k-bob", reason: "budget: team search spent 103% of its 5000.00 USD budget for 2026-11", until: until),
                    .init(keyID: "k-private", reason: "manual: left the company", until: nil),
                ]))
            try await Task.sleep(for: .milliseconds(400))
            let refused = try await h.call("/openai/v1/chat/completions", body: Self.chat, key: Harness.bobSecret)
            #expect(refused.status == 429)
            let detail = (try JSONSerialization.jsonObject(with: Data(refused.body)) as? [String: Any])?["error"] as? [String: Any]
            #expect(detail?["type"] as? String == "insufficient_quota")
            #expect(
                (detail?["message"] as? String)?.contains("key k-bob is revoked until 2099-12-01T00:00:00.000Z: team search spent 103%")
                    == true)
            let anthropic = try await h.call("/anthropic/v1/messages", body: "{}", key: Harness.bobSecret, anthropicStyle: true)
            #expect(anthropic.status == 429)
            #expect(try await h.call("/openai/v1/chat/completions", body: Self.chat, key: Harness.privateSecret).status == 403)
            #expect(try await h.call("/openai/v1/chat/completions", body: Self.chat).status == 200, "alice is not listed")

            // A file whose checksum does not match is refused; the list in force stays.
            var corrupt = RevocationList().rendered()
            corrupt.append(contentsOf: "k-alice\tmanual: forged\t-\n".utf8)
            try Data(corrupt).write(to: URL(fileURLWithPath: h.revocationPath + ".tmp"))
            #expect(rename(h.revocationPath + ".tmp", h.revocationPath) == 0)
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await h.call("/openai/v1/chat/completions", body: Self.chat).status == 200)
            #expect(try await h.call("/openai/v1/chat/completions", body: Self.chat, key: Harness.bobSecret).status == 429)
            #expect(try await h.get("/metrics").text.contains("tally_revocation_reload_failures_total 1"))

            // An empty list lifts every revocation.
            try h.writeRevocations(RevocationList())
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await h.call("/openai/v1/chat/completions", body: Self.chat, key: Harness.bobSecret).status == 200)
        }
        let outcomes = events.map(\.outcome)
        #expect(outcomes.filter { $0 == .rejectedRevoked }.count == 4)
        #expect(
            events.filter { $0.outcome == .rejectedRevoked }.allSatisfy { $0.usage == nil && ($0.key == "k-bob" || $0.key == "k-private") })
    }

    /// A collector that starts with a list it cannot verify and no last good copy refuses calls with Tally keys, in
    /// the provider's shape, and says why on /readyz.
    @Test func aCollectorWithoutATrustworthyListRefusesCalls() async throws {
        let events = try await Harness.run(prepare: { folder in
            var corrupt = RevocationList().rendered()
            corrupt.append(contentsOf: "k-alice\tmanual: forged\t-\n".utf8)
            try Data(corrupt).write(to: URL(fileURLWithPath: folder + "/revoked.tsv"))
        }) { h in
            let refused = try await h.call("/openai/v1/chat/completions", body: Self.chat)
            #expect(refused.status == 503)
            let detail = (try JSONSerialization.jsonObject(with: Data(refused.body)) as? [String: Any])?["error"] as? [String: Any]
            #expect(detail?["code"] as? String == "revocation_list_unavailable")
            #expect(try await h.call("/anthropic/v1/messages", body: "{}", key: Harness.bobSecret, anthropicStyle: true).status == 503)
            let ready = try await h.get("/readyz")
            #expect(ready.status == 503 && ready.text.contains("sha256 line does not match"))
            try h.writeRevocations(RevocationList())
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await h.call("/openai/v1/chat/completions", body: Self.chat).status == 200)
            #expect(try await h.get("/readyz").status == 200)
        }
        #expect(events.filter { $0.outcome == .rejectedInvalid && $0.error == "revocation list unavailable" }.count == 2)
        #expect(mockNeverSawARefusedCall(events))
    }

    func mockNeverSawARefusedCall(_ events: [UsageEvent]) -> Bool {
        events.filter { $0.outcome == .rejectedInvalid }.allSatisfy { $0.usage == nil && $0.status == 503 }
    }

    /// A path is read the way the provider will read it: an escaped letter is decoded and the call metered as what it
    /// is; escaped slashes, dot and empty segments are refused before anything reaches the provider.
    @Test func pathsAreNormalisedBeforeTheyAreClassified() async throws {
        let stream = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
        let events = try await Harness.run { h in
            let escaped = try await h.call("/openai/v1/chat/complet%69ons", body: stream)
            #expect(escaped.status == 200)
            #expect(
                !String(decoding: escaped.body, as: UTF8.self).contains(#""choices":[]"#), "the usage chunk Tally asked for is left out")
            for bad in [
                "/openai/v1/chat/completions/.", "/openai/v1/x/../chat/completions", "/openai/v1/chat%2Fcompletions",
                "/openai//v1/chat/completions", "/openai/v1/chat/completions/", "/openai/v1/chat/complet%2569ons",
                "/openai/v1/chat/completions%3Fx=1", "/openai/v1/chat/completions%zz",
            ] {
                let refused = try await h.call(bad, body: stream)
                #expect(refused.status == 400, "\(bad)")
                let detail = (try JSONSerialization.jsonObject(with: Data(refused.body)) as? [String: Any])?["error"] as? [String: Any]
                #expect(detail?["code"] as? String == "invalid_path", "\(bad)")
            }
            let received = h.mock.received.withLock { $0 }
            #expect(received.map(\.path) == ["/v1/chat/completions"], "only the normalised path reached the provider")
            #expect(received.first.map { String(decoding: $0.body, as: UTF8.self).contains(#""include_usage":true"#) } == true)
        }
        #expect(events.count == 1)
        #expect(events.first?.endpoint == .chatCompletions && events.first?.usage != nil && events.first?.stream == true)
    }

    /// Who pays is the organisation's choice: a client's OpenAI-Organization, OpenAI-Project or X-Goog-User-Project is
    /// removed, and the provider entry's own headers are sent.
    @Test func headersThatChangeWhoPaysComeFromTheConfigOnly() async throws {
        _ = try await Harness.run { h in
            let billing = ["OpenAI-Organization": "org-attacker", "OpenAI-Project": "proj-other-team", "X-Goog-User-Project": "other"]
            let openai = try await h.call("/openai/v1/chat/completions", body: Self.chat, headers: billing)
            let anthropic = try await h.call(
                "/anthropic/v1/messages", body: #"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[]}"#, key: Harness.bobSecret,
                anthropicStyle: true, headers: billing)
            #expect(openai.status == 200 && anthropic.status == 200)
            let received = h.mock.received.withLock { $0 }
            #expect(received.count == 2)
            #expect(received[0].headers["openai-organization"] == "org-tally", "the provider entry's own")
            #expect(received.allSatisfy { $0.headers["openai-project"] == nil && $0.headers["x-goog-user-project"] == nil })
            #expect(received[1].headers["openai-organization"] == nil)
        }
    }

    /// A metered call whose body Tally cannot read is refused, not forwarded unmetered.
    @Test func unreadableBodiesOfMeteredCallsAreRefused() async throws {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        let events = try await Harness.run { h in
            for body in [
                #"{"model":"gpt-4o-mini","stream":true,"messages":"# + deep + "}", #"{"model":"gpt-4o-mini","stream":true,"x":"\ud800"}"#,
                "model=gpt-4o-mini&stream=true",
            ] {
                let refused = try await h.call("/openai/v1/chat/completions", body: body)
                #expect(refused.status == 400, "\(body.prefix(40))")
            }
            #expect(h.mock.received.withLock { $0 }.isEmpty, "nothing reached the provider")
        }
        #expect(events.count == 3 && events.allSatisfy { $0.outcome == .rejectedInvalid && $0.status == 400 })
    }

    @Test func upstreamErrorsPassThroughUnchanged() async throws {
        let events = try await Harness.run { h in
            let result = try await h.call("/openai/v1/chat/completions", body: #"{"model":"fail-500","messages":[]}"#, testID: "fail")
            #expect(result.status == 500)
            #expect(result.body == h.mock.sent.withLock { $0["fail"] })
        }
        #expect(events.count == 1)
        #expect(events[0].outcome == .upstreamError && events[0].status == 500 && events[0].model == "fail-500")
    }

    @Test func aClientThatLeavesMidStreamIsLoggedAsAnAbort() async throws {
        let events = try await Harness.run { h in
            var request = HTTPClientRequest(url: h.base + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "authorization", value: "Bearer \(Harness.aliceSecret)")
            request.body = .bytes(ByteBuffer(string: #"{"model":"slow","stream":true,"messages":[]}"#))
            let task = Task {
                let response = try await h.client.execute(request, timeout: .seconds(30))
                var chunks = 0
                for try await _ in response.body {
                    chunks += 1
                    if chunks == 3 { throw CancellationError() }
                }
            }
            _ = await task.result
            // Give the collector a moment to notice the closed connection on its next write.
            try await Task.sleep(for: .milliseconds(800))
        }
        #expect(events.count == 1)
        #expect(events.first?.outcome == .clientAbort)
        #expect(events.first?.model == "slow-model")
    }

    @Test func shutdownWithCallsInFlightLosesNoEvent() async throws {
        let events = try await Harness.run { h in
            let calls = (0..<5).map { i in
                Task {
                    try await h.call(
                        "/v1/chat/completions", body: #"{"model":"slow","stream":true,"messages":[{"role":"user","content":"n\#(i)"}]}"#)
                }
            }
            // Shut down once every call is in flight (has reached the provider): a connection still in the listen
            // backlog when the listener closes is refused, rightly, and on a loaded machine 300 ms was not enough.
            let deadline = ContinuousClock.now + .seconds(20)
            while h.mock.received.withLock({ $0.count }) < calls.count, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(h.mock.received.withLock { $0.count } == calls.count)
            await h.collector.shutdown()
            for call in calls {
                let result = try await call.value
                #expect(result.status == 200)
                #expect(String(decoding: result.body, as: UTF8.self).contains("39 "), "the stream finished")
            }
        }
        #expect(events.count == 5)
        #expect(events.allSatisfy { $0.outcome == .ok && $0.usage == UsageEvent.Usage(input: 30, output: 40) })
    }

    @Test func privateKeysKeepNoPreviewAndOperationsEndpointsAnswer() async throws {
        let events = try await Harness.run { h in
            #expect(try await h.call("/openai/v1/chat/completions", body: Self.chat, key: Harness.privateSecret).status == 200)
            #expect(try await h.get("/healthz").status == 200)
            #expect(try await h.get("/readyz").status == 200)
            let text = try await h.get("/metrics").text
            #expect(
                text.contains(
                    #"tally_requests_total{provider="openai",endpoint="chat.completions",model="gpt-4o-mini-2024-07-18",outcome="ok"} 1"#))
            #expect(text.contains(#"tally_tokens_total{provider="openai",model="gpt-4o-mini-2024-07-18",kind="input"} 12"#))
            #expect(text.contains("tally_added_latency_seconds_count 1"))
            #expect(!text.contains("tk-test"))
        }
        #expect(events.count == 1 && events[0].preview == nil && events[0].promptHash != nil)
    }
}
