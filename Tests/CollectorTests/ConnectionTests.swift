import Foundation
import Glibc
import Synchronization
import Testing
import UsageLog

@testable import Collector

/// What an HTTP/1.1 client may do on one connection, written by hand: pipelined requests, a half-close after them, a
/// malformed request, an idle connection at shutdown. The answers come in order, each call is logged once, and the
/// collector never answers a request before the one sent ahead of it.
@Suite struct ConnectionTests {
    typealias RawConnection = SlowClientTests.RawConnection

    static func request(_ path: String, _ body: String, close: Bool = false) -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Harness.aliceSecret)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\(close ? "Connection: close\r\n" : "")\r\n\(body)"
    }

    static let slowChat = request("/openai/v1/chat/completions", #"{"model":"slow-head","messages":[{"role":"user","content":"one"}]}"#)
    static let heldChat = request("/openai/v1/chat/completions", #"{"model":"held-head","messages":[{"role":"user","content":"one"}]}"#)
    static let embedding = request("/openai/v1/embeddings", #"{"model":"text-embedding-3-small","input":"two"}"#)
    static let lastCompletion = request(
        "/openai/v1/completions", #"{"model":"gpt-3.5-turbo-instruct","prompt":"three"}"#, close: true)

    /// The status lines and the order of the answers' bodies in what the collector wrote back.
    static func answers(_ text: String) -> (statuses: [String], order: [String]) {
        // A status line follows the end of the answer before it, which has no line break of its own.
        let statuses = text.matches(of: #/HTTP/1\.1 [0-9]{3} /#).map { String(text[$0.range].dropLast()) }
        let marks = ["chat.completion", "\"embedding\"", "text_completion"]
        let order = marks.compactMap { mark in text.range(of: mark).map { (mark, $0.lowerBound) } }.sorted { $0.1 < $1.1 }.map(\.0)
        return (statuses, order)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let events = try await Harness.run { h in
            let raw = try RawConnection(port: h.collectorPort)
            // The first call's answer comes a second late; the two behind it wait for it, whatever their provider says.
            raw.send(Self.slowChat + Self.embedding + Self.lastCompletion)
            let (text, closed) = await raw.readUntilClosed(limit: .seconds(10))
            #expect(closed, "the last request asked to close")
            let answers = Self.answers(text)
            #expect(answers.statuses == ["HTTP/1.1 200", "HTTP/1.1 200", "HTTP/1.1 200"], "\(text)")
            #expect(answers.order == ["chat.completion", "\"embedding\"", "text_completion"], "\(text)")
        }
        #expect(events.count == 3 && events.allSatisfy { $0.outcome == .ok && $0.usage != nil }, "\(events)")
    }

    /// Many requests in one write, more than one read of the socket holds: reading stops while they wait and resumes
    /// once they have had their turn.
    @Test func manyPipelinedRequestsAreAllAnswered() async throws {
        let count = 400
        let events = try await Harness.run { h in
            let raw = try RawConnection(port: h.collectorPort)
            raw.send(String(repeating: Self.embedding, count: count - 1) + Self.lastCompletion)
            let (text, closed) = await raw.readUntilClosed(limit: .seconds(30))
            #expect(closed)
            let statuses = Self.answers(text).statuses
            #expect(statuses.count == count && Set(statuses) == ["HTTP/1.1 200"], "\(statuses.count) answers")
        }
        #expect(events.count == count && events.allSatisfy { $0.outcome == .ok }, "\(events.count) events")
    }

    /// Each request on a connection is judged by its own key: a connection that changes keys gets each one's answer.
    @Test func eachRequestOnAConnectionIsJudgedByItsOwnKey() async throws {
        let events = try await Harness.run { h in
            let raw = try RawConnection(port: h.collectorPort)
            let unknown = Self.embedding.replacing(Harness.aliceSecret, with: "tk-not-a-key-of-this-collector")
            raw.send(Self.embedding + unknown + Self.embedding + unknown + Self.lastCompletion)
            let (text, closed) = await raw.readUntilClosed(limit: .seconds(10))
            #expect(closed)
            #expect(Self.answers(text).statuses == ["HTTP/1.1 200", "HTTP/1.1 401", "HTTP/1.1 200", "HTTP/1.1 401", "HTTP/1.1 200"])
        }
        #expect(events.map(\.outcome) == [.ok, .rejectedUnknownKey, .ok, .rejectedUnknownKey, .ok], "\(events)")
    }

    /// A client that sends its requests and then closes its side still gets every answer, then the connection closes.
    @Test func pipelinedRequestsThenAHalfCloseAreAllAnswered() async throws {
        let events = try await Harness.run { h in
            let raw = try RawConnection(port: h.collectorPort)
            raw.send(Self.slowChat + Self.embedding)
            shutdown(raw.fd, Int32(SHUT_WR))
            let (text, closed) = await raw.readUntilClosed(limit: .seconds(10))
            #expect(closed)
            #expect(Self.answers(text).statuses == ["HTTP/1.1 200", "HTTP/1.1 200"], "\(text)")
            #expect(Self.answers(text).order == ["chat.completion", "\"embedding\""], "\(text)")
        }
        #expect(events.count == 2 && events.allSatisfy { $0.outcome == .ok }, "\(events)")
    }

    /// Bytes that are not HTTP get 400 and a closed connection; behind a call in progress, only after its answer.
    @Test func aMalformedRequestIsAnswered400AfterTheCallAheadOfIt() async throws {
        let events = try await Harness.run { h in
            let alone = try RawConnection(port: h.collectorPort)
            alone.send("this is not HTTP\r\n\r\n")
            let (text, closed) = await alone.readUntilClosed(limit: .seconds(5))
            #expect(closed && text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(text)")

            let behind = try RawConnection(port: h.collectorPort)
            behind.send(Self.slowChat + "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            let (answers, closedAfter) = await behind.readUntilClosed(limit: .seconds(10))
            #expect(closedAfter)
            #expect(Self.answers(answers).statuses == ["HTTP/1.1 200", "HTTP/1.1 400"], "\(answers)")
        }
        #expect(events.count == 1 && events.first?.outcome == .ok, "\(events)")
    }

    /// A body that breaks HTTP's framing (a chunk size that is not hex) ends the call it belongs to: 400, the close,
    /// and a line saying the request was not read in full. Nothing goes upstream.
    @Test func aMalformedChunkEndsItsCallWith400() async throws {
        let events = try await Harness.run { h in
            let raw = try RawConnection(port: h.collectorPort)
            raw.send(
                "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Harness.aliceSecret)\r\n"
                    + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"mod\r\nzz\r\n")
            let (text, closed) = await raw.readUntilClosed(limit: .seconds(5))
            #expect(closed && Self.answers(text).statuses == ["HTTP/1.1 400"], "\(text)")
            #expect(h.mock.received.withLock { $0.isEmpty })
        }
        #expect(events.count == 1 && events.first?.outcome == .rejectedInvalid, "\(events)")
    }

    /// At a graceful shutdown an idle keep-alive connection is closed at once; a call in progress is answered, with
    /// `connection: close`, and its connection closed after it.
    @Test func shutdownClosesIdleConnectionsAndEndsBusyOnesAfterTheirAnswer() async throws {
        let events = try await Harness.run { h in
            let idle = try RawConnection(port: h.collectorPort)
            idle.send(Self.embedding)
            var (first, closedEarly) = ("", false)
            let answered = ContinuousClock.now + .seconds(10)
            while !first.hasSuffix(MockUpstream.embeddingUsage + "}"), !closedEarly, ContinuousClock.now < answered {
                let read = await idle.readUntilClosed(limit: .milliseconds(100))
                first += read.text
                closedEarly = read.closed
            }
            #expect(!closedEarly && Self.answers(first).statuses == ["HTTP/1.1 200"], "kept open after its answer: \(first)")

            // The busy call's answer waits until the idle connection is closed. The shutdown gives every connection's
            // loop its notice in one go, so by then the busy one has had its notice queued before any answer exists.
            let busy = try RawConnection(port: h.collectorPort)
            busy.send(Self.heldChat)
            let deadline = ContinuousClock.now + .seconds(10)
            while h.mock.received.withLock({ $0.count }) < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            let stopping = Task { await h.collector.shutdown() }
            #expect(await idle.readUntilClosed(limit: .seconds(5)).closed, "the idle connection is closed")
            h.mock.heldHeadsReleased.withLock { $0 = true }
            let (text, closed) = await busy.readUntilClosed(limit: .seconds(10))
            #expect(closed && Self.answers(text).statuses == ["HTTP/1.1 200"], "\(text)")
            #expect(text.lowercased().contains("connection: close\r\n"), "\(text)")
            await stopping.value
        }
        #expect(events.count == 2 && events.allSatisfy { $0.outcome == .ok }, "\(events)")
    }
}
