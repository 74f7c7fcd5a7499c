import NIOCore
import NIOHTTP1

/// Writes an HTTP/1 message head (a start line, the headers, an empty line) into a buffer in one pass: its length is
/// counted first, the buffer reserved once, and each string copied once. The collector's encoders
/// (`UpstreamRequestEncoder`, `ClientAnswerEncoder`) use it in place of NIO's, which checks the buffer's room for every
/// name and value.
enum HTTPHeadBytes {
    /// The bytes of the headers as HTTP/1: each as `name: value` and CRLF, then the empty line.
    static func count(_ headers: HTTPHeaders) -> Int {
        var count = 2
        for (name, value) in headers { count += name.utf8.count + 2 + value.utf8.count + 2 }
        return count
    }

    /// Appends a start line of three strings joined by spaces and ended by CRLF, then `headers`; `bytes` is their
    /// length (`count(startLine:)` and `count(_:)` of the headers).
    static func write(startLine: (String, String, String), headers: HTTPHeaders, bytes: Int, to buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bytes) { out in
            let space = UInt8(ascii: " ")
            var at = put(startLine.0, into: out, at: 0)
            at = put(space, into: out, at: at)
            at = put(startLine.1, into: out, at: at)
            at = put(space, into: out, at: at)
            at = put(startLine.2, into: out, at: at)
            at = put(13, 10, into: out, at: at)
            for (name, value) in headers {
                at = put(name, into: out, at: at)
                at = put(UInt8(ascii: ":"), space, into: out, at: at)
                at = put(value, into: out, at: at)
                at = put(13, 10, into: out, at: at)
            }
            return put(13, 10, into: out, at: at)
        }
    }

    /// The length of a start line of three parts joined by spaces, with its CRLF.
    static func count(startLine: (String, String, String)) -> Int {
        startLine.0.utf8.count + 1 + startLine.1.utf8.count + 1 + startLine.2.utf8.count + 2
    }

    /// `HTTP/1.1` and the like.
    static func version(_ version: HTTPVersion) -> String {
        switch (version.major, version.minor) {
        case (1, 1): "HTTP/1.1"
        case (1, 0): "HTTP/1.0"
        default: "HTTP/\(version.major).\(version.minor)"
        }
    }

    // Functions that take and return the offset, not a closure capturing it: the captured offset cost two exclusivity
    // checks per string.
    private static func put(_ text: String, into out: UnsafeMutableRawBufferPointer, at: Int) -> Int {
        let copied = text.utf8.withContiguousStorageIfAvailable { bytes in
            if let base = bytes.baseAddress { (out.baseAddress! + at).copyMemory(from: base, byteCount: bytes.count) }
            return bytes.count
        }
        if let copied { return at + copied }
        out[at..<at + text.utf8.count].copyBytes(from: text.utf8)
        return at + text.utf8.count
    }

    private static func put(_ byte: UInt8, into out: UnsafeMutableRawBufferPointer, at: Int) -> Int {
        out[at] = byte
        return at + 1
    }

    private static func put(_ a: UInt8, _ b: UInt8, into out: UnsafeMutableRawBufferPointer, at: Int) -> Int {
        out[at] = a
        out[at + 1] = b
        return at + 2
    }
}
