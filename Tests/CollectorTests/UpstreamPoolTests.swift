import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import TallyConfig
import TallyCore
import TestSupport
import Testing
import UsageLog

@testable import Collector

/// The collector's own upstream connections: keep-alive reuse, providers that close, break off or fall silent, TLS
/// with a private CA, a client that reads slowly, and many streams at once.
@Suite("Upstream connections")
struct UpstreamPoolTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
    static let stream = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#

    static func scripted(
        _ port: Int, name: String = "scripted", scheme: String = "http", host: String = "127.0.0.1", extra: String = ""
    )
        -> String
    {
        "  - {name: \(name), kind: openai, base_url: \"\(scheme)://\(host):\(port)\", api_key_env: MOCK_OPENAI_KEY\(extra)}"
    }

    @Test func keepAliveConnectionsAreReusedAndClosedOnesAreNotFatal() async throws {
        let upstream = ScriptedUpstream()
        let port = try await upstream.start()
        defer { Task { await upstream.stop() } }
        let events = try await Harness.run(extraProviders: Self.scripted(port)) { h in
            // One client connection at a time: its calls share one upstream connection.
            for _ in 0..<10 {
                let result = try await h.call("/scripted/v1/chat/completions", body: Self.chat)
                #expect(result.status == 200)
            }
            #expect(upstream.accepted.load(ordering: .relaxed) == 1)
            // A provider that closes each connection after its answer, without saying so: no call fails.
            for _ in 0..<20 {
                let result = try await h.call("/scripted/v1/chat/completions", body: Self.chat, headers: ["x-script": "close-after"])
                #expect(result.status == 200, "\(String(decoding: result.body, as: UTF8.self))")
            }
            // One that closes a kept-alive connection just as the next request goes out: that request goes again, once,
            // on a new connection. (The calls above may have been retried too, when a close came after the next call
            // took the connection.)
            let retriesBefore = try await Self.retries(h)
            for _ in 0..<5 {
                let result = try await h.call("/scripted/v1/chat/completions", body: Self.chat, headers: ["x-script": "answer-once"])
                #expect(result.status == 200, "\(String(decoding: result.body, as: UTF8.self))")
            }
            // The first call may find no kept-alive connection; each later one finds the previous call's.
            let retried = try await Self.retries(h) - retriesBefore
            #expect(retried == 4 || retried == 5, "\(retried) retries")
        }
        #expect(events.count == 35)
        #expect(events.allSatisfy { $0.outcome == .ok && $0.usage == UsageEvent.Usage(input: 11, output: 7) })
        #expect(upstream.requests.load(ordering: .relaxed) >= 30)
    }

    /// `tally_upstream_retries_total` from the collector's metrics.
    static func retries(_ h: Harness) async throws -> Int {
        let metrics = try await h.get("/metrics").text
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("tally_upstream_retries_total ") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? -1
    }

    @Test func aConnectionThatSpeaksUnaskedIsNotUsedAgain() async throws {
        let upstream = ScriptedUpstream()
        let port = try await upstream.start()
        defer { Task { await upstream.stop() } }
        let events = try await Harness.run(extraProviders: Self.scripted(port)) { h in
            let first = try await h.call("/scripted/v1/chat/completions", body: Self.chat, headers: ["x-script": "answer-twice"])
            #expect(first.status == 200)
            try await Task.sleep(for: .milliseconds(100))
            // The next call must not take the unasked-for answer for its own.
            let second = try await h.call("/scripted/v1/chat/completions", body: Self.chat)
            #expect(second.status == 200)
        }
        #expect(events.map(\.usage) == [UsageEvent.Usage(input: 99, output: 7), UsageEvent.Usage(input: 11, output: 7)])
        #expect(upstream.accepted.load(ordering: .relaxed) == 2)
    }

    @Test func aProviderThatBreaksOffMidStreamBreaksTheClientsAnswerAndIsLogged() async throws {
        let upstream = ScriptedUpstream()
        let port = try await upstream.start()
        defer { Task { await upstream.stop() } }
        let events = try await Harness.run(extraProviders: Self.scripted(port)) { h in
            await #expect(throws: (any Error).self) {
                _ = try await h.call("/scripted/v1/chat/completions", body: Self.stream, headers: ["x-script": "reset-mid-stream"])
            }
            // The collector itself is fine.
            let after = try await h.call("/scripted/v1/chat/completions", body: Self.chat)
            #expect(after.status == 200)
        }
        #expect(events.count == 2)
        let broken = try #require(events.first)
        #expect(broken.outcome == .upstreamError)
        #expect(broken.error == "upstream stream broke off")
        #expect(broken.usageEstimated == true)
        #expect((broken.usage?.output ?? 0) >= 3)
    }

    @Test func aDrainedCallWhoseProviderFallsSilentIsLoggedAtDrainTimeout() async throws {
        let upstream = ScriptedUpstream()
        let port = try await upstream.start()
        defer { Task { await upstream.stop() } }
        let events = try await Harness.run(extraConfig: "  drain_timeout: 1s", extraProviders: Self.scripted(port)) { h in
            let collector = h.collectorPort
            // A client that reads the first event and leaves.
            let first = try await offPool {
                let fd = try Loopback.connect(port: collector)
                defer { close(fd) }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                let request =
                    "POST /scripted/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Harness.aliceSecret)\r\n"
                    + "Content-Type: application/json\r\nx-script: stall-mid-stream\r\n"
                    + "Content-Length: \(Self.stream.utf8.count)\r\n\r\n\(Self.stream)"
                _ = request.withCString { send(fd, $0, strlen($0), 0) }
                var buffer = [UInt8](repeating: 0, count: 4096)
                var text = ""
                while !text.contains("data: ") {
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n <= 0 { break }
                    text += String(decoding: buffer[0..<n], as: UTF8.self)
                }
                return text
            }
            #expect(first.contains("data: "))
            // The provider says nothing more: the call is logged once drain_timeout has passed, not at shutdown.
            try await Task.sleep(for: .seconds(2))
        }
        #expect(events.count == 1)
        #expect(events.first?.outcome == .clientAbort)
        #expect(events.first?.error == "client disconnected; drain_timeout passed before the usage came")
        #expect(events.first?.usageEstimated == true)
    }

    @Test func aSilentProviderTimesOutAsConfigured() async throws {
        let upstream = ScriptedUpstream()
        let port = try await upstream.start()
        defer { Task { await upstream.stop() } }
        let events = try await Harness.run(extraConfig: "  upstream_read_timeout: 400ms", extraProviders: Self.scripted(port)) { h in
            let started = ContinuousClock.now
            let result = try await h.call("/scripted/v1/chat/completions", body: Self.chat, headers: ["x-script": "silent"])
            let took = ContinuousClock.now - started
            #expect(result.status == 502)
            #expect(took >= .milliseconds(350) && took < .seconds(5))
        }
        #expect(events.count == 1)
        #expect(events.first?.outcome == .upstreamError)
        #expect(events.first?.error == "upstream unreachable")
    }

    @Test func aProviderThatIsNotThereGets502AtOnce() async throws {
        // A port nothing listens on: bound here and never listened on, so that no other test's server can take it
        // meanwhile (a port freed by a stopped server was, once, and answered 401).
        let (socket, port) = try Loopback.boundButNotListening()
        defer { close(socket) }
        let events = try await Harness.run(extraProviders: Self.scripted(port)) { h in
            let result = try await h.call("/scripted/v1/chat/completions", body: Self.chat)
            #expect(result.status == 502)
        }
        #expect(events.map(\.outcome) == [.upstreamError])
    }

    @Test func callsWaitForAConnectionWhenThePoolIsFull() async throws {
        let upstream = ScriptedUpstream()
        let port = try await upstream.start()
        defer { Task { await upstream.stop() } }
        let events = try await Harness.run(extraConfig: "  upstream_max_connections: 1", extraProviders: Self.scripted(port)) { h in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 { group.addTask { try await h.call("/scripted/v1/chat/completions", body: Self.chat).status } }
                for try await status in group { #expect(status == 200) }
            }
            // At most one connection per event loop.
            #expect(upstream.accepted.load(ordering: .relaxed) <= System.coreCount)
        }
        #expect(events.count == 8)
    }

    @Test func tlsWithThePrivateCAOfTheProviderEntry() async throws {
        let folder = NSTemporaryDirectory() + "tally-tls-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (certificates, contexts) = try await offPool {
            let certificates = try TestCertificates(folder: folder)
            return (
                certificates,
                [
                    try certificates.serverContext(names: ["localhost"]), try certificates.serverContext(names: ["gateway.example"]),
                    try certificates.serverContext(names: ["localhost"], signedByTestCA: false),
                ]
            )
        }
        let good = ScriptedUpstream()
        let goodPort = try await good.start(tls: contexts[0])
        let otherName = ScriptedUpstream()
        let otherNamePort = try await otherName.start(tls: contexts[1])
        let stranger = ScriptedUpstream()
        let strangerPort = try await stranger.start(tls: contexts[2])
        defer {
            Task {
                await good.stop()
                await otherName.stop()
                await stranger.stop()
            }
        }
        let ca = ", ca_file: \(certificates.caFile)"
        let providers = [
            Self.scripted(goodPort, name: "private", scheme: "https", host: "localhost", extra: ca),
            Self.scripted(goodPort, name: "untrusted", scheme: "https", host: "localhost"),
            Self.scripted(otherNamePort, name: "misnamed", scheme: "https", host: "localhost", extra: ca),
            Self.scripted(strangerPort, name: "stranger", scheme: "https", host: "localhost", extra: ca),
        ].joined(separator: "\n")
        let events = try await Harness.run(extraProviders: providers) { h in
            let plain = try await h.call("/private/v1/chat/completions", body: Self.chat)
            #expect(plain.status == 200, "\(String(decoding: plain.body, as: UTF8.self))")
            let streamed = try await h.call("/private/v1/chat/completions", body: Self.stream)
            #expect(streamed.status == 200)
            // Without the CA, with a certificate for another name, or from a CA not named: refused, nothing sent.
            for name in ["untrusted", "misnamed", "stranger"] {
                let result = try await h.call("/\(name)/v1/chat/completions", body: Self.chat)
                #expect(result.status == 502, "\(name)")
            }
        }
        #expect(good.requests.load(ordering: .relaxed) == 2)
        #expect(otherName.requests.load(ordering: .relaxed) == 0)
        #expect(stranger.requests.load(ordering: .relaxed) == 0)
        #expect(events.map(\.outcome) == [.ok, .ok, .upstreamError, .upstreamError, .upstreamError])
        #expect(events.first?.usage == UsageEvent.Usage(input: 11, output: 7))
    }

    @Test func aCAFileThatCannotBeReadStopsTheStart() async throws {
        let folder = NSTemporaryDirectory() + "tally-tls-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let yaml = Harness.config(
            folder: folder, mockPort: 1, extra: "",
            providers: Self.scripted(1, name: "private", scheme: "https", host: "localhost", extra: ", ca_file: \(folder)/missing.pem"))
        let config = try Config.parse(yaml: yaml)
        do {
            try await CollectorServer.run(
                config: config, environment: ["TALLY_HASH_SECRET": "s", "MOCK_OPENAI_KEY": "k"], logger: Logger(label: "test"))
            Issue.record("the collector started with a CA file it cannot read")
        } catch let error as CollectorError {
            #expect(error.message.contains("missing.pem cannot be read"), "\(error.message)")
        }
    }

    @Test func aProviderKeyWithALineBreakStopsTheStart() async throws {
        let folder = NSTemporaryDirectory() + "tally-key-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = try Config.parse(yaml: Harness.config(folder: folder, mockPort: 1, extra: ""))
        do {
            try await CollectorServer.run(
                config: config, environment: ["TALLY_HASH_SECRET": "s", "MOCK_OPENAI_KEY": "sk-1\r\nX-Injected: 1"],
                logger: Logger(label: "test"))
            Issue.record("the collector started with a provider key that would split its requests")
        } catch let error as CollectorError {
            #expect(error.message.contains("MOCK_OPENAI_KEY holds a control character"), "\(error.message)")
        }
    }

    @Test func aSlowClientSlowsTheProviderInsteadOfFillingTheCollector() async throws {
        let upstream = ScriptedUpstream()
        let port = try await upstream.start()
        defer { Task { await upstream.stop() } }
        let total = 64 << 20
        let events = try await Harness.run(extraProviders: Self.scripted(port)) { h in
            let fd = try Loopback.connect(port: h.collectorPort)
            defer { close(fd) }
            var small: Int32 = 64 << 10
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            let request =
                "POST /scripted/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Harness.aliceSecret)\r\n"
                + "Content-Type: application/json\r\nx-script: flood\r\nx-flood-bytes: \(total)\r\n"
                + "Content-Length: \(Self.stream.utf8.count)\r\n\r\n\(Self.stream)"
            _ = request.withCString { send(fd, $0, strlen($0), 0) }
            // Not reading: the provider may only get as far as the sockets' buffers and a little more. Wait until it
            // stops getting further (or 6 s), then see how far it got.
            var written = 0
            for _ in 0..<20 {
                try await Task.sleep(for: .milliseconds(300))
                let now = upstream.floodWritten.load(ordering: .relaxed)
                if now == written, now > 0 { break }
                written = now
            }
            print("back-pressure: the provider wrote \(written) bytes while the client read nothing")
            #expect(written < 16 << 20, "the provider wrote \(written) bytes while the client read nothing")
            // Reading everything: the whole stream arrives, and ends.
            let received = try await offPool {
                var received = 0
                var tail: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                var timeout = timeval(tv_sec: 10, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                while true {
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n <= 0 { break }
                    received += n
                    tail = Array((tail + buffer[0..<n]).suffix(16))
                    if String(decoding: tail, as: UTF8.self).contains("0\r\n\r\n") { break }
                }
                return received
            }
            #expect(received > total)
        }
        #expect(events.count == 1)
        #expect(events.first?.outcome == .ok)
        #expect(events.first?.usage == UsageEvent.Usage(input: 11, output: 7))
    }

    @Test func aClientThatExpects100ContinueIsAskedForItsBody() async throws {
        let upstream = ScriptedUpstream()
        let port = try await upstream.start()
        defer { Task { await upstream.stop() } }
        let events = try await Harness.run(extraProviders: Self.scripted(port)) { h in
            let collector = h.collectorPort
            let answer = try await offPool {
                let fd = try Loopback.connect(port: collector)
                defer { close(fd) }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                let head =
                    "POST /scripted/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Harness.aliceSecret)\r\n"
                    + "Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: \(Self.chat.utf8.count)\r\n\r\n"
                _ = head.withCString { send(fd, $0, strlen($0), 0) }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = recv(fd, &buffer, buffer.count, 0)
                let interim = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
                guard interim.hasPrefix("HTTP/1.1 100 Continue") else { return interim }
                _ = Self.chat.withCString { send(fd, $0, strlen($0), 0) }
                var text = ""
                while !text.contains("total_tokens") {
                    let m = recv(fd, &buffer, buffer.count, 0)
                    if m <= 0 { break }
                    text += String(decoding: buffer[0..<m], as: UTF8.self)
                }
                return interim + text
            }
            #expect(answer.hasPrefix("HTTP/1.1 100 Continue"), "\(answer)")
            #expect(answer.contains("HTTP/1.1 200 OK"))
        }
        #expect(events.map(\.outcome) == [.ok])
    }

    @Test func twoHundredConcurrentStreamsAreEachLoggedExactly() async throws {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let events = try await Harness.run { h in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        var request = HTTPClientRequest(url: h.base + "/openai/v1/chat/completions")
                        request.method = .POST
                        request.headers.add(name: "authorization", value: "Bearer \(Harness.aliceSecret)")
                        request.headers.add(name: "x-test-id", value: "stream-\(i)")
                        request.body = .bytes(
                            ByteBuffer(string: #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"n \#(i)"}]}"#))
                        let response = try await client.execute(request, timeout: .seconds(60))
                        var bytes = 0
                        for try await chunk in response.body { bytes += chunk.readableBytes }
                        return bytes > 0 ? Int(response.status.code) : 0
                    }
                }
                for try await status in group { #expect(status == 200) }
            }
        }
        try await client.shutdown()
        #expect(events.count == 200)
        let chat = UsageEvent.Usage(input: 12, output: 5, cachedInput: 4, reasoning: 2)
        #expect(events.allSatisfy { $0.usage == chat && $0.outcome == .ok && $0.stream && $0.usageEstimated != true })
        #expect(Set(events.map(\.promptHash)).count == 200)
    }
}
