import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Collector

/// The collector's own encoder for requests to providers writes what NIO's `HTTPRequestEncoder` writes for the same
/// request, in one buffer.
@Suite("Upstream request encoder")
struct UpstreamRequestEncoderTests {
    /// Requests as `ProxyCall` makes them (the body's length in `content-length`), and some it does not make.
    static let requests: [(HTTPRequestHead, String?)] = {
        func head(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)]) -> HTTPRequestHead {
            HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers))
        }
        let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"héllo"}]}"#
        return [
            (
                head(
                    .POST, "/v1/chat/completions",
                    [
                        ("host", "api.openai.com"), ("content-type", "application/json"), ("accept-encoding", "identity"),
                        ("authorization", "Bearer sk-x"), ("content-length", String(chat.utf8.count)),
                    ]), chat
            ),
            (head(.GET, "/v1/models?limit=5&after=a%20b", [("host", "127.0.0.1:8080"), ("x-trace", "ü-ñ")]), nil),
            (head(.POST, "/v1/files", [("host", "h"), ("content-length", "0")]), ""),
            (head(.RAW(value: "PROPFIND"), "/", [("host", "h"), ("x-a", "1"), ("x-a", "2"), ("x-empty", "")]), nil),
            (
                HTTPRequestHead(version: .http1_0, method: .PUT, uri: "/x", headers: HTTPHeaders([("content-length", "3")])),
                "abc"
            ),
        ]
    }()

    /// What an encoder in an embedded channel writes for head, body and end, one buffer per write.
    static func written(
        by encoder: some ChannelOutboundHandler, _ head: HTTPRequestHead, _ body: ByteBuffer?
    ) throws -> [[UInt8]] {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(encoder)
        // Not `writeOutbound`, which waits for each part's promise: this encoder completes them when the request ends.
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        var writes: [[UInt8]] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            if buffer.readableBytes > 0 { writes.append(Array(buffer.readableBytesView)) }
        }
        _ = try channel.finish()
        return writes
    }

    @Test func writesWhatNIOsEncoderWritesInOneBuffer() throws {
        for (head, body) in Self.requests {
            let bodyBuffer = body.map { ByteBuffer(string: $0) }
            let ours = try Self.written(by: UpstreamRequestEncoder(), head, bodyBuffer)
            let nios = try Self.written(by: HTTPRequestEncoder(), head, bodyBuffer)
            #expect(ours == [nios.flatMap { $0 }], "\(head.method) \(head.uri)")
            #expect(UpstreamRequestEncoder.headBytes(head) == nios[0].count, "\(head.method) \(head.uri)")
        }
    }

    @Test func aLargeBodyIsWrittenBehindTheHeadWithoutACopy() throws {
        let body = ByteBuffer(repeating: UInt8(ascii: "x"), count: UpstreamRequestEncoder.mergedBodyBytes + 1)
        let head = HTTPRequestHead(
            version: .http1_1, method: .POST, uri: "/v1/embeddings",
            headers: HTTPHeaders([("host", "h"), ("content-length", String(body.readableBytes))]))
        let ours = try Self.written(by: UpstreamRequestEncoder(), head, body)
        let nios = try Self.written(by: HTTPRequestEncoder(), head, body)
        #expect(ours.count == 2)
        #expect(ours == nios)
    }

    @Test func thePromisesCompleteWhenTheRequestIsWritten() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(UpstreamRequestEncoder())
        let head = HTTPRequestHead(
            version: .http1_1, method: .POST, uri: "/", headers: HTTPHeaders([("host", "h"), ("content-length", "2")]))
        let headWritten = channel.write(HTTPClientRequestPart.head(head))
        let bodyWritten = channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: "{}"))))
        channel.flush()
        // Held until the request ends.
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        let endWritten = channel.writeAndFlush(HTTPClientRequestPart.end(nil))
        try headWritten.wait()
        try bodyWritten.wait()
        try endWritten.wait()
        let written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: written).hasSuffix("\r\n\r\n{}"))
        _ = try channel.finish()
    }
}
