import TallyCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What reading one segment found.
public struct SegmentReadSummary: Sendable, Equatable {
    public init() {}

    /// Complete lines handed to the caller (blank lines are not counted or handed over).
    public var lines = 0
    /// Decompressed bytes read, including any skipped tail.
    public var bytes: Int64 = 0
    /// Bytes after the last newline that were not handed over: a line cut short by a crash, or still being written.
    public var skippedTailBytes = 0
    /// Why a gzip segment could not be read to its end (cut short, corrupt); nil when it was read whole.
    public var damage: String?
    /// The number of the last complete line (blank ones included), 0 when there was none.
    public var lastLineNumber = 0
    /// The first bytes (up to `tailKeep`) of the skipped tail, so a caller can keep what a cut-short line held.
    public var tail: [UInt8] = []

    /// How much of a skipped tail `tail` keeps.
    public static let tailKeep = 64 << 10
}

/// Reads the lines of a segment, plain or gzipped, without loading it whole.
public enum SegmentReader {
    /// Calls `body` with each complete, non-blank line (without its `\n`) and its 1-based line number.
    ///
    /// The buffer passed to `body` is valid only during the call. A last line without `\n` is not handed over:
    /// its length is reported in `skippedTailBytes`. A gzip file that is cut short or corrupt has its complete lines
    /// handed over and the problem reported in `damage`; only I/O failures throw.
    ///
    /// A plain (open) segment can be read from `offset`, a byte just after a newline that an earlier read reported
    /// (`offset + bytes - skippedTailBytes`); lines are then numbered from `firstLineNumber`.
    @discardableResult
    public static func read(
        path: String, from offset: Int64 = 0, firstLineNumber: Int = 1, chunkSize: Int = 1 << 20,
        _ body: (_ lineNumber: Int, _ line: UnsafeBufferPointer<UInt8>) throws -> Void
    ) throws -> SegmentReadSummary {
        if path.hasSuffix(".gz") {
            precondition(offset == 0, "a gzip segment is read from its start")
            var source = try GzipChunkReader(path: path)
            defer { source.finish() }
            var summary = try split(
                chunkSize: chunkSize, firstLineNumber: firstLineNumber,
                next: { buffer throws(FileIOError) in try source.read(into: buffer) }, body)
            summary.damage = source.damage
            return summary
        } else {
            let fd = try FileIO.open(path, O_RDONLY)
            defer { close(fd) }
            if offset > 0, lseek(fd, off_t(offset), SEEK_SET) < 0 {
                throw FileIOError.system("cannot seek in", path: path)
            }
            return try split(
                chunkSize: chunkSize, firstLineNumber: firstLineNumber,
                next: { buffer throws(FileIOError) in try FileIO.read(fd, into: buffer, path: path) }, body)
        }
    }

    private static func split(
        chunkSize: Int, firstLineNumber: Int,
        next: (UnsafeMutableRawBufferPointer) throws(FileIOError) -> Int,
        _ body: (Int, UnsafeBufferPointer<UInt8>) throws -> Void
    ) throws -> SegmentReadSummary {
        var summary = SegmentReadSummary()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { chunk.deallocate() }
        var carry: [UInt8] = []
        var lineNumber = firstLineNumber - 1

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
        summary.lastLineNumber = lineNumber
        summary.tail = Array(carry.prefix(SegmentReadSummary.tailKeep))
        return summary
    }
}
