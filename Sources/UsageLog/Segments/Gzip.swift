import CZlib
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file gzip compression with zlib, for closing segments.
public enum Gzip {
    /// Compresses `source` into `destination` (gzip format), fsyncing the result before returning.
    public static func compressFile(source: String, destination: String, level: Int32 = 6) throws(LogIOError) {
        let input = try FileIO.open(source, O_RDONLY)
        defer { close(input) }
        let output = try FileIO.open(destination, O_WRONLY | O_CREAT | O_TRUNC)
        defer { close(output) }

        // zlib checks that a stream stays at the address it was initialised at, so it lives on the heap.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deallocate() }
        guard tally_deflateInit2(stream, level, 15 + 16) == Z_OK else {
            throw LogIOError(code: .compression, message: "zlib could not start compressing \(source)")
        }
        defer { deflateEnd(stream) }

        let chunk = 1 << 20
        let inBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        let outBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { inBuffer.deallocate(); outBuffer.deallocate() }

        var finished = false
        while !finished {
            let n = try FileIO.read(input, into: inBuffer, path: source)
            let flush = n == 0 ? Z_FINISH : Z_NO_FLUSH
            stream.pointee.next_in = inBuffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_in = uInt(n)
            repeat {
                stream.pointee.next_out = outBuffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(chunk)
                let status = deflate(stream, flush)
                guard status != Z_STREAM_ERROR else {
                    throw LogIOError(code: .compression, message: "zlib failed while compressing \(source)")
                }
                let produced = chunk - Int(stream.pointee.avail_out)
                try FileIO.writeAll(output, UnsafeRawBufferPointer(rebasing: outBuffer[0..<produced]), path: destination)
                if status == Z_STREAM_END { finished = true }
            } while stream.pointee.avail_out == 0
        }
        try FileIO.fsync(output, path: destination)
    }
}

/// Streams the decompressed bytes of a gzip file (one or more members) chunk by chunk, and says if it ended early.
struct GzipChunkReader {
    private let path: String
    private let fd: Int32
    /// On the heap: zlib checks that a stream stays at the address it was initialised at.
    private let stream: UnsafeMutablePointer<z_stream>
    private let inBuffer: UnsafeMutableRawBufferPointer
    private var inputExhausted = false
    private var streamEnded = false
    private var started = false
    /// Set when the file ended before its gzip stream did, or the data was corrupt.
    private(set) var damage: String?

    init(path: String, chunkSize: Int = 1 << 20) throws(LogIOError) {
        self.path = path
        fd = try FileIO.open(path, O_RDONLY)
        inBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard tally_inflateInit2(stream, 15 + 32) == Z_OK else {
            close(fd)
            inBuffer.deallocate()
            stream.deallocate()
            throw LogIOError(code: .compression, message: "zlib could not start reading \(path)")
        }
    }

    /// Releases the file and zlib's state; call once when done.
    func finish() {
        inflateEnd(stream)
        stream.deallocate()
        close(fd)
        inBuffer.deallocate()
    }

    /// Fills `output` with the next decompressed bytes; returns how many (0 at the end, or when the file is damaged).
    mutating func read(into output: UnsafeMutableRawBufferPointer) throws(LogIOError) -> Int {
        guard damage == nil else { return 0 }
        stream.pointee.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(output.count)
        while stream.pointee.avail_out > 0 {
            if stream.pointee.avail_in == 0 {
                if inputExhausted { break }
                let n = try FileIO.read(fd, into: inBuffer, path: path)
                if n == 0 {
                    inputExhausted = true
                    break
                }
                stream.pointee.next_in = inBuffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_in = uInt(n)
            }
            if streamEnded {
                // Another gzip member follows (concatenated gzip files are valid gzip).
                guard stream.pointee.next_in[0] == 0x1f else {
                    damage = "\(stream.pointee.avail_in) bytes of trailing data after the gzip stream"
                    break
                }
                inflateReset(stream)
                streamEnded = false
            }
            started = true
            let status = inflate(stream, Z_NO_FLUSH)
            switch status {
            case Z_OK, Z_BUF_ERROR:
                continue
            case Z_STREAM_END:
                streamEnded = true
            default:
                let reason = stream.pointee.msg.map { String(cString: $0) } ?? "code \(status)"
                damage = "corrupt gzip data (\(reason))"
            }
            if damage != nil { break }
        }
        let produced = output.count - Int(stream.pointee.avail_out)
        if produced == 0, inputExhausted, damage == nil, started, !streamEnded {
            damage = "the gzip stream is cut short"
        }
        if produced == 0, inputExhausted, damage == nil, !started {
            damage = "the file is empty, not gzip"
        }
        return produced
    }
}
