#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What reading one segment found.
public struct SegmentReadSummary: Sendable, Equatable {
    /// Complete lines handed to the caller (blank lines are not counted or handed over).
    public var lines = 0
    /// Decompressed bytes read, including any skipped tail.
    public var bytes: Int64 = 0
    /// Bytes after the last newline that were not handed over: a line cut short by a crash, or still being written.
    public var skippedTailBytes = 0
    /// Why a gzip segment could not be read to its end (cut short, corrupt); nil when it was read whole.
    public var damage: String?
}

/// Reads the lines of a segment, plain or gzipped, without loading it whole.
public enum SegmentReader {
    /// Calls `body` with each complete, non-blank line (without its `\n`) and its 1-based line number.
    ///
    /// The buffer passed to `body` is valid only during the call. A last line without `\n` is not handed over:
    /// its length is reported in `skippedTailBytes`. A gzip file that is cut short or corrupt has its complete lines
    /// handed over and the problem reported in `damage`; only I/O failures throw.
    @discardableResult
    public static func read(
        path: String, chunkSize: Int = 1 << 20,
        _ body: (_ lineNumber: Int, _ line: UnsafeBufferPointer<UInt8>) throws -> Void
    ) throws -> SegmentReadSummary {
        if path.hasSuffix(".gz") {
            var source = try GzipChunkReader(path: path)
            defer { source.finish() }
            var summary = try split(chunkSize: chunkSize, next: { buffer throws(LogIOError) in try source.read(into: buffer) }, body)
            summary.damage = source.damage
            return summary
        } else {
            let fd = try FileIO.open(path, O_RDONLY)
            defer { close(fd) }
            return try split(chunkSize: chunkSize, next: { buffer throws(LogIOError) in try FileIO.read(fd, into: buffer, path: path) }, body)
        }
    }

    private static func split(
        chunkSize: Int,
        next: (UnsafeMutableRawBufferPointer) throws(LogIOError) -> Int,
        _ body: (Int, UnsafeBufferPointer<UInt8>) throws -> Void
    ) throws -> SegmentReadSummary {
        var summary = SegmentReadSummary()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { chunk.deallocate() }
        var carry: [UInt8] = []
        var lineNumber = 0

        while true {
            let count = try next(chunk)
            if count == 0 { break }
            summary.bytes += Int64(count)
            let bytes = UnsafeBufferPointer(start: chunk.baseAddress!.assumingMemoryBound(to: UInt8.self), count: count)
            var lineStart = 0
            while lineStart < count {
                guard let found = memchr(bytes.baseAddress! + lineStart, 0x0A, count - lineStart) else { break }
                let newline = UnsafePointer(found.assumingMemoryBound(to: UInt8.self)) - bytes.baseAddress!
                lineNumber += 1
                if carry.isEmpty {
                    if newline > lineStart {
                        summary.lines += 1
                        try body(lineNumber, UnsafeBufferPointer(rebasing: bytes[lineStart..<newline]))
                    }
                } else {
                    carry.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[lineStart..<newline]))
                    summary.lines += 1
                    try carry.withUnsafeBufferPointer { try body(lineNumber, $0) }
                    carry.removeAll(keepingCapacity: true)
                }
                lineStart = newline + 1
            }
            if lineStart < count {
                carry.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[lineStart..<count]))
            }
        }
        summary.skippedTailBytes = carry.count
        return summary
    }
}
