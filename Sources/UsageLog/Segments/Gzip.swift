import CDeflate
import CZlib
import TallyCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file gzip compression for closing segments.
public enum Gzip {
    /// Bytes compressed into each gzip member. Memory stays bounded (about twice this) whatever the file's size.
    public static let memberBytes = 1 << 20

    /// Compresses `source` into `destination`, fsyncing the result before returning.
    ///
    /// The output is a series of gzip members of `memberBytes` of input each (RFC 1952 §2.2 allows several members;
    /// `zcat`, Python's gzip and Tally's reader read them as one stream), made by libdeflate, which is about twice
    /// as fast as zlib at level 1 on log lines and compresses them better.
    public static func compressFile(source: String, destination: String, level: Int32 = 6) throws(FileIOError) {
        let input = try FileIO.open(source, O_RDONLY)
        defer { close(input) }
        let output = try FileIO.open(destination, O_WRONLY | O_CREAT | O_TRUNC)
        defer { close(output) }
        guard let compressor = libdeflate_alloc_compressor(max(1, min(12, level))) else {
            throw FileIOError(code: .compression, message: "libdeflate could not start compressing \(source)")
        }
        defer { libdeflate_free_compressor(compressor) }

        let bound = libdeflate_gzip_compress_bound(compressor, memberBytes)
        let inBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: memberBytes, alignment: 16)
        let outBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bound, alignment: 16)
        defer {
            inBuffer.deallocate()
            outBuffer.deallocate()
        }

        var wroteAny = false
        while true {
            // Fill a whole member's worth, so members are full size whatever the read sizes.
            var filled = 0
            while filled < memberBytes {
                let n = try FileIO.read(input, into: UnsafeMutableRawBufferPointer(rebasing: inBuffer[filled...]), path: source)
                if n == 0 { break }
                filled += n
            }
            if filled == 0 && wroteAny { break }
            let produced = libdeflate_gzip_compress(compressor, inBuffer.baseAddress, filled, outBuffer.baseAddress, bound)
            guard produced > 0 else {
                throw FileIOError(code: .compression, message: "libdeflate failed while compressing \(source)")
            }
            try FileIO.writeAll(output, UnsafeRawBufferPointer(rebasing: outBuffer[0..<produced]), path: destination)
            wroteAny = true
            if filled < memberBytes { break }
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

    init(path: String, chunkSize: Int = 1 << 20) throws(FileIOError) {
        self.path = path
        fd = try FileIO.open(path, O_RDONLY)
        inBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard tally_inflateInit2(stream, 15 + 32) == Z_OK else {
            close(fd)
            inBuffer.deallocate()
            stream.deallocate()
            throw FileIOError(code: .compression, message: "zlib could not start reading \(path)")
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
    mutating func read(into output: UnsafeMutableRawBufferPointer) throws(FileIOError) -> Int {
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
