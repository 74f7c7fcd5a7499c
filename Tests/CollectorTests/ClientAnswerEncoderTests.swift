import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Collector

/// The collector's own encoder for answers to clients writes what NIO's server pipeline (its request decoder and
/// `HTTPResponseEncoder`, which learns each request's method from the decoder) writes for the same answer.
@Suite("Client answer encoder")
struct ClientAnswerEncoderTests {
    struct Answer: CustomStringConvertible {
        var method: HTTPMethod = .POST
        var version: HTTPVersion = .http1_1
        /// Heads in order: any interim ones (1xx), then the final one.
        var heads: [(HTTPResponseStatus, [(String, String)])]
        var body: [String] = []

        var description: String { "\(method) HTTP/\(version.major).\(version.minor) \(heads.map(\.0.code)) \(body.count) reads" }
    }

    static let chat = #"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":1}}"#
    static let answers: [Answer] = [
        // A chat answer whose length the provider stated.
        Answer(
            heads: [(.ok, [("content-type", "application/json"), ("content-length", String(chat.utf8.count)), ("x-request-id", "ü")])],
            body: [chat]),
        // A stream: no length, so chunked; an empty read is no chunk.
        Answer(
            heads: [(.ok, [("content-type", "text/event-stream"), ("x-a", "1"), ("x-a", "2"), ("x-empty", "")])],
            body: ["data: {\"a\":1}\n\n", "", "data: [DONE]\n\n"]),
        // HEAD keeps the framing headers and sends no body, nor a chunked end.
        Answer(method: .HEAD, heads: [(.ok, [("content-length", "10")])]),
        Answer(method: .HEAD, heads: [(.ok, [("content-type", "text/plain")])]),
        // Statuses without a body lose their framing headers.
        Answer(method: .GET, heads: [(.noContent, [("content-length", "0")])]),
        Answer(method: .GET, heads: [(.notModified, [("transfer-encoding", "chunked"), ("etag", "\"e\"")])]),
        // A length wins over a transfer coding.
        Answer(method: .GET, heads: [(.ok, [("transfer-encoding", "chunked"), ("content-length", "2")])], body: ["{}"]),
        // HTTP/1.0 has no chunks: the body runs to the connection's close.
        Answer(method: .GET, version: .http1_0, heads: [(.ok, [("content-type", "text/plain")])], body: ["a", "b"]),
        Answer(method: .GET, version: .http1_0, heads: [(.ok, [("content-length", "1")])], body: ["a"]),
        // An interim answer, then the final one.
        Answer(heads: [(.continue, []), (.ok, [("content-length", "2")])], body: ["{}"]),
        // Statuses NIO does not name keep the provider's reason phrase; an empty one leaves the space.
        Answer(heads: [(.custom(code: 599, reasonPhrase: "Odd Gateway"), [("content-length", "0")])]),
        Answer(heads: [(.custom(code: 299, reasonPhrase: ""), [])], body: ["x"]),
        Answer(heads: [(.tooManyRequests, [("retry-after", "1"), ("content-length", "2")])], body: ["{}"]),
        // Large reads go as they are, behind what came before.
        Answer(
            heads: [(.ok, [("content-type", "text/event-stream")])],
            body: ["data: 1\n\n", String(repeating: "y", count: ClientAnswerEncoder.mergedBodyBytes + 1), "data: 2\n\n"]),
        Answer(
            method: .GET, heads: [(.ok, [("content-length", String(ClientAnswerEncoder.mergedBodyBytes * 2))])],
            body: [String(repeating: "z", count: ClientAnswerEncoder.mergedBodyBytes * 2)]),
    ]

    /// What NIO's server pipeline writes for `answer`, after decoding the request it answers.
    static func writtenByNIO(_ answer: Answer) throws -> [UInt8] {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false)
        let version = "HTTP/\(answer.version.major).\(answer.version.minor)"
        try channel.writeInbound(ByteBuffer(string: "\(answer.method.rawValue) / \(version)\r\nhost: h\r\n\r\n"))
        while try channel.readInbound(as: HTTPServerRequestPart.self) != nil {}
        for (status, headers) in answer.heads {
            channel.write(
                HTTPServerResponsePart.head(HTTPResponseHead(version: answer.version, status: status, headers: HTTPHeaders(headers))),
                promise: nil)
        }
        for read in answer.body { channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: read))), promise: nil) }
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        _ = try channel.finish()
        return bytes
    }

    /// What `ClientAnswerEncoder` writes for `answer`, driven as `ClientHandler` drives it, one buffer per write.
    static func writtenByOurs(_ answer: Answer) -> [[UInt8]] {
        var encoder = ClientAnswerEncoder()
        let allocator = ByteBufferAllocator()
        var writes: [[UInt8]] = []
        for (status, headers) in answer.heads {
            encoder.head(
                HTTPResponseHead(version: answer.version, status: status, headers: HTTPHeaders(headers)), answering: answer.method,
                allocator: allocator)
        }
        for read in answer.body {
            encoder.body(ByteBuffer(string: read), allocator: allocator) { writes.append(Array($0.readableBytesView)) }
        }
        encoder.end(allocator: allocator)
        if let last = encoder.take() { writes.append(Array(last.readableBytesView)) }
        #expect(!encoder.hasPending)
        return writes
    }

    @Test(arguments: answers)
    func writesWhatNIOsServerPipelineWrites(_ answer: Answer) throws {
        let ours = Self.writtenByOurs(answer)
        #expect(ours.flatMap { $0 } == (try Self.writtenByNIO(answer)))
        let large = answer.body.contains { $0.utf8.count > ClientAnswerEncoder.mergedBodyBytes }
        if !large { #expect(ours.count == 1, "a small answer leaves in one write") }
    }

    @Test func aLargeReadIsWrittenAsItIs() {
        let large = String(repeating: "y", count: ClientAnswerEncoder.mergedBodyBytes + 1)
        let ours = Self.writtenByOurs(
            Answer(heads: [(.ok, [("content-type", "text/event-stream")])], body: ["data: 1\n\n", large, "data: 2\n\n"]))
        // The head, the first event and the large read's size line; the large read; its CRLF, the last event and the end.
        #expect(ours.count == 3)
        #expect(ours[1] == Array(large.utf8))
    }

    @Test func theEncoderIsReadyForTheNextAnswer() {
        // After an answer to HEAD, and after a chunked one, the next answer on the connection is framed afresh.
        var encoder = ClientAnswerEncoder()
        let allocator = ByteBufferAllocator()
        encoder.head(HTTPResponseHead(version: .http1_1, status: .ok), answering: .HEAD, allocator: allocator)
        encoder.end(allocator: allocator)
        encoder.head(HTTPResponseHead(version: .http1_1, status: .ok), answering: .GET, allocator: allocator)
        encoder.body(ByteBuffer(string: "ab"), allocator: allocator) { _ in Issue.record("nothing is emitted") }
        encoder.end(allocator: allocator)
        let bytes = String(buffer: encoder.take()!)
        #expect(
            bytes
                == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
        )
    }
}
