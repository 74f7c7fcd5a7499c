import AsyncHTTPClient
import Foundation
import Glibc
import Logging
import Synchronization
import TallyCore
import TestSupport
import Testing
import UsageLog

@testable import Collector

/// The log folder fills up under load (`docs/collector.md`, "A full disk"): nothing is lost, no call reaches the
/// provider unlogged, and operators see it.
@Suite struct FullDiskTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#

    @Test func aFullDiskStopsNewCallsBeforeTheProviderAndLosesNothing() async throws {
        let forwarded = Mutex(0)
        let events = try await Harness.run(extraConfig: "  log_queue_size: 16\n  log_queue_wait: 300ms\n") { h in
            #expect(try await h.call("/openai/v1/chat/completions", body: Self.chat).status == 200)
            FileIO.simulateFullDisk(under: h.folder + "/log", room: 0)
            defer { FileIO.simulateFullDisk(under: h.folder + "/log", room: nil) }

            // Calls are answered while the queue has slots; then they wait, and are refused before the provider.
            var answered = 0
            var refused: (status: Int, body: [UInt8], contentType: String)?
            for _ in 0..<40 {
                let result = try await h.call("/openai/v1/chat/completions", body: Self.chat)
                if result.status == 200 {
                    answered += 1
                } else {
                    refused = result
                    break
                }
            }
            #expect(answered > 0 && answered <= 16, "the queue's 16 slots bound what runs while the log is stuck")
            let refusal = try #require(refused)
            #expect(refusal.status == 503)
            let error = (try JSONSerialization.jsonObject(with: Data(refusal.body)) as? [String: Any])?["error"] as? [String: Any]
            #expect(error?["code"] as? String == "log_unavailable")
            #expect((error?["message"] as? String)?.contains("No space left on device") == true)
            #expect(h.mock.received.withLock { $0.count } == 1 + answered, "the refused call never reached the provider")

            // Operators see it.
            let ready = try await h.get("/readyz")
            #expect(ready.status == 503 && ready.text.contains("usage log cannot be written"))
            let metrics = try await h.get("/metrics").text
            #expect(!metrics.contains("tally_event_queue_depth 0\n"))
            #expect(metrics.contains("tally_log_unavailable_total 1\n"))
            #expect(!metrics.contains("tally_log_write_errors_total 0\n"))

            // Room again: the writer catches up, /readyz recovers, calls go through.
            FileIO.simulateFullDisk(under: h.folder + "/log", room: nil)
            var recovered = false
            for _ in 0..<50 where !recovered {
                try await Task.sleep(for: .milliseconds(100))
                recovered = try await h.get("/readyz").status == 200
            }
            #expect(recovered)
            #expect(try await h.call("/openai/v1/chat/completions", body: Self.chat).status == 200)
            forwarded.withLock { $0 = h.mock.received.withLock { $0.count } }
        }
        let calls = events.filter { $0.outcome == .ok }
        #expect(calls.count == events.count && Set(events.map(\.id)).count == events.count, "every line once, whole")
        #expect(calls.count == forwarded.withLock { $0 } && calls.allSatisfy { $0.usage != nil }, "each forwarded call, once")
    }
}

extension FullDiskTests {
    /// A call whose client gives up while it waits for a log slot is not forwarded when the slot comes.
    @Test func aCallAbandonedWhileWaitingIsNotForwarded() async throws {
        let events = try await Harness.run(extraConfig: "  log_queue_size: 16\n  log_queue_wait: 10s\n") { h in
            FileIO.simulateFullDisk(under: h.folder + "/log", room: 0)
            defer { FileIO.simulateFullDisk(under: h.folder + "/log", room: nil) }
            // Take every slot: the writer cannot write, so none comes back.
            var answered = 0
            while answered < 16 {
                let raw = try SlowClientTests.RawConnection(port: h.collectorPort)
                raw.send(Self.request)
                guard await raw.readUntilClosed(limit: .seconds(10)).text.hasPrefix("HTTP/1.1 200") else { break }
                answered += 1
            }
            #expect(answered == 16)
            let before = h.mock.received.withLock { $0.count }
            // This one waits for a slot; its client leaves.
            let leaving = try SlowClientTests.RawConnection(port: h.collectorPort)
            leaving.send(Self.request)
            try await Task.sleep(for: .milliseconds(300))
            shutdown(leaving.fd, Int32(SHUT_WR))
            try await Task.sleep(for: .milliseconds(200))
            FileIO.simulateFullDisk(under: h.folder + "/log", room: nil)
            var abandoned = false
            for _ in 0..<50 where !abandoned {
                try await Task.sleep(for: .milliseconds(100))
                abandoned = try await h.get("/metrics").text.contains("tally_log_wait_abandoned_total 1\n")
            }
            #expect(abandoned)
            #expect(h.mock.received.withLock { $0.count } == before, "the abandoned call never reached the provider")
        }
        #expect(events.allSatisfy { $0.outcome == .ok })
    }

    static let request =
        "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Harness.aliceSecret)\r\n"
        + "Content-Type: application/json\r\nContent-Length: \(chat.utf8.count)\r\nConnection: close\r\n\r\n\(chat)"
}

@Suite struct PendingCompressionTests {
    /// A closed segment that cannot be gzipped (a full disk) stays plain and is compressed once there is room.
    @Test func aSegmentThatFailedToCompressIsTriedAgain() throws {
        let folder = NSTemporaryDirectory() + "tally-compress-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer {
            FileIO.simulateFullDisk(under: folder, room: nil)
            try? FileManager.default.removeItem(atPath: folder)
        }
        let plain = folder + "/20261122T100000Z-000001.jsonl"
        try String(repeating: #"{"v":1}"# + "\n", count: 100).write(toFile: plain, atomically: true, encoding: .utf8)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var pending = PendingCompressions(level: 6, logger: logger)
        FileIO.simulateFullDisk(under: folder, room: 10)
        pending.compress(plain)
        #expect(pending.failed == [plain] && FileManager.default.fileExists(atPath: plain))
        pending.compress(nil)
        #expect(pending.failed == [plain], "still no room")
        FileIO.simulateFullDisk(under: folder, room: nil)
        pending.compress(nil)
        #expect(pending.failed.isEmpty && !FileManager.default.fileExists(atPath: plain))
        #expect(FileManager.default.fileExists(atPath: plain + ".gz"))
    }
}

/// Slow or idle clients cannot hold connections and calls open (`client_idle_timeout`, `request_read_timeout`).
@Suite struct SlowClientTests {
    /// A plain TCP connection to the collector, written and read by hand.
    final class RawConnection {
        let fd: Int32
        var closed = false
        init(port: Int) throws {
            fd = try Loopback.connect(port: port)
        }
        deinit { if !closed { close(fd) } }

        func send(_ text: String) { _ = text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } }

        /// Reads until the collector closes the connection or `limit` passes; returns what came and whether it closed.
        /// It never blocks a thread: the test's tasks share the cooperative pool with the mock provider's handlers.
        func readUntilClosed(limit: Duration) async -> (text: String, closed: Bool) {
            var out: [UInt8] = []
            let deadline = ContinuousClock.now + limit
            var buffer = [UInt8](repeating: 0, count: 4096)
            while ContinuousClock.now < deadline {
                let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { return (String(decoding: out, as: UTF8.self), true) }
                if n > 0 {
                    out.append(contentsOf: buffer[0..<n])
                    continue
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return (String(decoding: out, as: UTF8.self), false)
        }
    }

    @Test func aTricklingBodyIsCutOffAndAnIdleConnectionClosed() async throws {
        let events = try await Harness.run(extraConfig: "  request_read_timeout: 1s\n  client_idle_timeout: 3s\n") { h in
            // A byte every 300 ms never trips the idle timeout; request_read_timeout ends it.
            let slow = try RawConnection(port: h.collectorPort)
            slow.send(
                "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Harness.aliceSecret)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"model\":")
            let started = ContinuousClock.now
            var closed = false
            while !closed, ContinuousClock.now - started < .seconds(6) {
                slow.send(" ")
                closed = await slow.readUntilClosed(limit: .milliseconds(300)).closed
            }
            #expect(closed && ContinuousClock.now - started < .milliseconds(2500), "cut off after about request_read_timeout")

            let idle = try RawConnection(port: h.collectorPort)
            let opened = ContinuousClock.now
            #expect(await idle.readUntilClosed(limit: .seconds(8)).closed)
            #expect(ContinuousClock.now - opened < .seconds(6), "an idle connection is closed after client_idle_timeout")
            #expect(h.mock.received.withLock { $0.isEmpty }, "nothing went upstream")
        }
        #expect(events.count == 1)
        #expect(events.first?.outcome == .rejectedInvalid && events.first?.error == "request not read in time")
    }
}

@Suite struct LargeBodyTests {
    /// A large prompt is parsed, hashed and redacted off the event loop, so the loop's other connections do not wait for
    /// it; its call is metered like any other.
    @Test func aLargeBodyIsReadOffTheEventLoop() async throws {
        let before = Proxy.largeBodiesReadOffLoop.load(ordering: .relaxed)
        let text = String(repeating: "tell me about jane.doe@example.com and the weather. ", count: 40_000)
        let events = try await Harness.run { h in
            let result = try await h.call(
                "/openai/v1/chat/completions", body: #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""# + text + #""}]}"#)
            #expect(result.status == 200)
        }
        #expect(Proxy.largeBodiesReadOffLoop.load(ordering: .relaxed) > before)
        #expect(events.count == 1 && events[0].promptHash != nil && events[0].usage != nil)
        #expect(events[0].preview?.contains("[EMAIL]") == true)
    }
}

@Suite struct ClientGoneBeforeTheAnswerTests {
    /// A client that leaves while the provider is still working on a non-streamed answer: the collector never writes
    /// the answer's head, but the provider bills the call, so it is logged (with the provider's usage, drained) and
    /// its log slot comes back.
    @Test func aClientGoneBeforeTheHeadIsStillLogged() async throws {
        let events = try await Harness.run { h in
            let body = #"{"model":"slow-head","messages":[{"role":"user","content":"hi"}]}"#
            let raw = try SlowClientTests.RawConnection(port: h.collectorPort)
            raw.send(
                "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Harness.aliceSecret)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            try await Task.sleep(for: .milliseconds(300))
            // An abrupt close (RST), as a client's timeout often ends a connection.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(raw.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            shutdown(raw.fd, Int32(SHUT_RDWR))
            close(raw.fd)
            raw.closed = true
            var logged = false
            for _ in 0..<50 where !logged {
                try await Task.sleep(for: .milliseconds(100))
                let metrics = try await h.get("/metrics").text
                logged = metrics.contains("tally_event_queue_reserved 0\n") && metrics.contains(#"outcome="client_abort"} 1"#)
            }
            #expect(logged, "the call was logged and its slot came back")
        }
        #expect(events.count == 1, "\(events)")
        #expect(
            events.first?.outcome == .clientAbort && events.first?.usage?.input == 12 && events.first?.usageEstimated == false, "\(events)")
    }
}
