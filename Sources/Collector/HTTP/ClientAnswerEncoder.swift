import NIOCore
import NIOHTTP1

/// Turns the answers `ClientHandler` writes into HTTP/1 bytes, framed as NIO's `HTTPResponseEncoder` frames them, and
/// gathers each answer's small parts into one buffer: the head, the body's reads and the end of a chat answer leave in
/// one write.
///
/// It takes the place of NIO's encoder on client connections. That encoder writes each header's name and value with
/// their own checks, and each part as its own write (a chunk of a stream as three: its size, its bytes, its CRLF).
///
/// Framing, as NIO's (RFC 9112 §6):
/// - An answer whose status has no body (1xx, 204, 304) loses `content-length` and `transfer-encoding`.
/// - One with `content-length` keeps it, and loses `transfer-encoding`.
/// - Otherwise an HTTP/1.1 answer is sent chunked (`transfer-encoding: chunked`). An HTTP/1.0 one is sent as it is and
///   ends with the connection, which the caller closes.
/// - The answer to a `HEAD` or `CONNECT` request keeps those headers but sends no body (and no chunked end); `CONNECT`
///   is framed as bodiless. NIO's encoder learns the method from its request decoder; here the caller says it.
///
/// Nothing is written by the encoder itself: the bytes it has are taken with `take()` (before a flush), and a part too
/// large to copy is handed to `emit` with what came before it.
struct ClientAnswerEncoder {
    /// Body reads up to this size are copied behind what is pending; larger ones are written as they are. A stream's
    /// events and a chat answer are far smaller; a slow client's back-pressure sees larger reads at once.
    static let mergedBodyBytes = 16 << 10

    /// Encoded bytes not written yet.
    private var pending: ByteBuffer?
    private var chunked = false
    private var bodiless = false

    /// Whether bytes are waiting for `take()`.
    var hasPending: Bool { pending != nil }

    /// Encodes an answer's head. `method` is the request's; a non-final 1xx head (an interim answer) carries none.
    mutating func head(_ head: HTTPResponseHead, answering method: HTTPMethod, allocator: ByteBufferAllocator) {
        var headers = head.headers
        let code = head.status.code
        let interim = (100..<200).contains(code) && code != 101
        // Matched, not compared: `HTTPMethod`'s `==` compares the methods' names.
        let connect = if case .CONNECT = method { true } else { false }
        let toHead = if case .HEAD = method { true } else { false }
        if !interim { bodiless = toHead || connect }
        chunked = false
        if connect && !interim || !head.status.mayHaveResponseBody {
            headers.remove(name: "content-length")
            headers.remove(name: "transfer-encoding")
        } else if headers.contains(name: "content-length") {
            // Headers from a provider have no `transfer-encoding` (a hop-by-hop header the collector drops).
            if headers.contains(name: "transfer-encoding") { headers.remove(name: "transfer-encoding") }
        } else if head.version.major == 1 && head.version.minor >= 1 {
            headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
            // An answer to HEAD says how a GET's body would come, and has none.
            chunked = !bodiless
        }
        let startLine = (HTTPHeadBytes.version(head.version), String(code), head.status.reasonPhrase)
        let bytes = HTTPHeadBytes.count(startLine: startLine) + HTTPHeadBytes.count(headers)
        var buffer = pending ?? allocator.buffer(capacity: bytes)
        pending = nil
        HTTPHeadBytes.write(startLine: startLine, headers: headers, bytes: bytes, to: &buffer)
        pending = buffer
    }

    /// Encodes a read of the body: copied behind what is pending when small, else handed to `emit` after it.
    mutating func body(_ chunk: ByteBuffer, allocator: ByteBufferAllocator, emit: (ByteBuffer) -> Void) {
        let count = chunk.readableBytes
        // An empty chunk would end a chunked body; an answer to HEAD has none.
        guard count > 0, !bodiless else { return }
        var buffer = pending ?? allocator.buffer(capacity: min(count, Self.mergedBodyBytes) + 16)
        pending = nil
        if chunked {
            buffer.writeString(String(count, radix: 16))
            buffer.writeStaticString("\r\n")
        }
        if count <= Self.mergedBodyBytes {
            buffer.writeImmutableBuffer(chunk)
            if chunked { buffer.writeStaticString("\r\n") }
            pending = buffer
            return
        }
        if buffer.readableBytes > 0 { emit(buffer) }
        emit(chunk)
        if chunked {
            var crlf = allocator.buffer(capacity: 2)
            crlf.writeStaticString("\r\n")
            pending = crlf
        }
    }

    /// Encodes the answer's end (the collector sends no trailers).
    mutating func end(allocator: ByteBufferAllocator) {
        defer { bodiless = false }
        guard chunked else { return }
        chunked = false
        var buffer = pending ?? allocator.buffer(capacity: 5)
        pending = nil
        buffer.writeStaticString("0\r\n\r\n")
        pending = buffer
    }

    /// The bytes encoded and not written yet.
    mutating func take() -> ByteBuffer? {
        defer { pending = nil }
        return pending
    }
}
