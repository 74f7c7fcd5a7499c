import TallyCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// When the writer forces written lines to disk.
public enum FsyncPolicy: Sendable, Equatable {
    /// At every `commit`: a crash loses nothing that was committed.
    case always
    /// At a `commit` or `tick` once this many milliseconds have passed since the last fsync.
    case interval(milliseconds: Int64)
    /// Only when a segment closes; the operating system decides otherwise.
    case never
}

/// How a `SegmentWriter` rotates and syncs.
public struct SegmentWriterOptions: Sendable {
    /// Close a segment before it would grow past this many bytes (a single larger line still gets a segment of its own).
    public var maxBytes: Int64 = 64 << 20
    /// Close a segment this many milliseconds after it was opened, measured on the clock passed to the writer.
    public var maxAgeMilliseconds: Int64 = 60_000
    public var fsync: FsyncPolicy = .interval(milliseconds: 1000)
    /// Buffered bytes that trigger a write to the kernel between commits.
    public var bufferBytes: Int = 256 << 10
    /// zlib level for closed segments (1 fastest … 9 smallest).
    public var gzipLevel: Int32 = 6
    /// Compress each segment as it closes. When false, closed plain files are left for the owner to compress
    /// (see `SegmentWriter.takeClosedSegments()` and `SegmentWriter.compress(_:)`), for example on another task.
    public var compressOnClose = true

    public init() {}
}

/// Appends v1 log lines to the segments of one collector's folder, rotating by size and age.
///
/// One writer owns a folder at a time: it holds an advisory lock on `<folder>/.writer.lock`. On start it finishes what
/// a crash left behind: a plain segment with a complete `.gz` twin is removed, one without is compressed.
/// A segment is opened only when the first line for it arrives, so an idle collector leaves no empty files.
///
/// Not thread-safe: give it to one task and send it lines.
public final class SegmentWriter {
    public let folder: String
    public let collector: String
    public let options: SegmentWriterOptions

    /// The lock on the folder; -1 once closed. A refused or failed init closes it itself, and `deinit` (which Swift
    /// runs after an init throws, once every property is set) must not close the number again: by then it may be
    /// another thread's file.
    private var lockFD: Int32
    private var fd: Int32 = -1
    private var currentStem: String?
    private var openedAt: Int64 = 0
    private var segmentBytes: Int64 = 0
    private var lastFsync: Int64 = 0
    private var needsFsync = false
    private var buffer: [UInt8] = []
    private var closed: [String] = []
    private var lastStemTime: String?
    private var sequence = 0

    /// Lines appended over the writer's life.
    public private(set) var linesWritten = 0
    /// Segments closed over the writer's life.
    public private(set) var segmentsClosed = 0

    /// Opens `<logDirectory>/<collector>/`, creating it, taking its lock and recovering leftovers from a crash.
    public init(logDirectory: String, collector: String, options: SegmentWriterOptions = SegmentWriterOptions()) throws(FileIOError) {
        guard !collector.isEmpty, !collector.contains("/"), !collector.hasPrefix(".") else {
            throw FileIOError(code: .io, message: "collector id '\(collector)' cannot name a folder")
        }
        self.collector = collector
        self.options = options
        folder = logDirectory + "/" + collector
        try FileIO.makeDirectories(folder)
        let lockPath = folder + "/.writer.lock"
        lockFD = try FileIO.open(lockPath, O_RDWR | O_CREAT)
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(lockFD)
            lockFD = -1
            throw FileIOError(
                code: .locked,
                message: "another writer holds \(folder) (lock \(lockPath)); is a collector with id '\(collector)' already running?")
        }
        buffer.reserveCapacity(options.bufferBytes + 4096)
        do throws(FileIOError) {
            try recover()
        } catch {
            Glibc.close(lockFD)
            lockFD = -1
            throw error
        }
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
        if lockFD >= 0 { Glibc.close(lockFD) }
    }

    /// Finishes segments a previous writer left open.
    private func recover() throws(FileIOError) {
        for name in try FileIO.list(folder) {
            let path = folder + "/" + name
            if name.hasSuffix(".tmp") {
                try FileIO.unlink(path)
            }
        }
        for segment in try LogDirectory.segments(collectorFolder: folder, collector: collector) where !segment.isClosed {
            if FileIO.exists(segment.path + ".gz") {
                try FileIO.unlink(segment.path)
            } else if FileIO.size(segment.path) == 0 {
                try FileIO.unlink(segment.path)
            } else {
                try compress(segment.path)
            }
        }
    }

    /// Appends one event. `now` is the writer's clock in milliseconds (wall time in a collector, simulated time in synth).
    ///
    /// When this throws, the event was not taken (a retry appends it once); once it returns, the event is taken even if
    /// writing the buffer to the file failed: `commit` writes it, resuming where the failed write stopped.
    public func append(_ event: UsageEvent, now: Int64) throws(FileIOError) {
        let start = buffer.count
        event.appendJSONLine(to: &buffer)
        try place(lineFrom: start, now: now)
    }

    /// Appends one complete line; it must be a single JSON object ending in `\n`.
    public func append(line: some BidirectionalCollection<UInt8>, now: Int64) throws(FileIOError) {
        precondition(line.last == UInt8(ascii: "\n"), "a log line must end in a newline")
        let start = buffer.count
        buffer.append(contentsOf: line)
        try place(lineFrom: start, now: now)
    }

    /// Puts the line now at `buffer[start...]` into the right segment, rotating first when it would not fit. If
    /// rotating or opening a segment fails, the line is taken out again (the caller retries it); a failure to write
    /// the full buffer afterwards is left for `commit`, since the line is taken.
    private func place(lineFrom start: Int, now: Int64) throws(FileIOError) {
        let length = Int64(buffer.count - start)
        let rotate =
            currentStem != nil && segmentBytes > 0
            && (segmentBytes + length > options.maxBytes || now - openedAt >= options.maxAgeMilliseconds)
        if rotate || currentStem == nil {
            // Write what precedes this line into the old segment and close it; open a new one for it.
            let line = Array(buffer[start...])
            buffer.removeSubrange(start...)
            if rotate { try closeSegment() }
            if currentStem == nil { try openSegment(now: now) }
            buffer.append(contentsOf: line)
        }
        segmentBytes += length
        linesWritten += 1
        if buffer.count >= options.bufferBytes { try? writeBuffer() }
    }

    /// Writes buffered lines to the kernel, and fsyncs as the policy says. Call it after each batch of appends.
    public func commit(now: Int64) throws(FileIOError) {
        try writeBuffer()
        guard fd >= 0, needsFsync else { return }
        switch options.fsync {
        case .always:
            try syncFile(now: now)
        case .interval(let ms):
            if now - lastFsync >= ms { try syncFile(now: now) }
        case .never:
            break
        }
    }

    /// Closes a segment that has reached its age, and syncs on the interval. Call it periodically when idle.
    public func tick(now: Int64) throws(FileIOError) {
        if currentStem != nil, now - openedAt >= options.maxAgeMilliseconds {
            try closeSegment()
        } else {
            try commit(now: now)
        }
    }

    /// Closes the active segment, if any: written, fsynced and (unless deferred) compressed.
    public func close() throws(FileIOError) {
        if currentStem != nil { try closeSegment() }
    }

    /// Paths of plain segments closed since the last call, when `compressOnClose` is false.
    public func takeClosedSegments() -> [String] {
        defer { closed.removeAll() }
        return closed
    }

    /// Compresses a closed plain segment to `.jsonl.gz` atomically: temporary file, fsync, rename, directory fsync,
    /// then removes the plain file. Safe to call from another thread for a path this writer no longer owns.
    public func compress(_ plainPath: String) throws(FileIOError) {
        try SegmentWriter.compress(plainPath, level: options.gzipLevel)
    }

    /// Compresses a closed plain segment; see `compress(_:)`.
    public static func compress(_ plainPath: String, level: Int32) throws(FileIOError) {
        let target = plainPath + ".gz"
        let temporary = target + ".tmp"
        try Gzip.compressFile(source: plainPath, destination: temporary, level: level)
        try FileIO.rename(temporary, target)
        let slash = plainPath.lastIndex(of: "/").map { String(plainPath[..<$0]) } ?? "."
        try FileIO.fsyncDirectory(slash)
        try FileIO.unlink(plainPath)
    }

    private func openSegment(now: Int64) throws(FileIOError) {
        let time = Timestamp.formatCompact(milliseconds: now)
        if time != lastStemTime {
            lastStemTime = time
            sequence = 0
        }
        var stem: String
        repeat {
            sequence += 1
            stem = SegmentFile.stem(openedAt: now, sequence: sequence)
        } while FileIO.exists(folder + "/" + stem + ".jsonl") || FileIO.exists(folder + "/" + stem + ".jsonl.gz")
        let path = folder + "/" + stem + ".jsonl"
        fd = try FileIO.open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND)
        try FileIO.fsyncDirectory(folder)
        currentStem = stem
        openedAt = now
        lastFsync = now
        segmentBytes = 0
    }

    /// Writes the buffer to the segment. A write that fails part way (a full disk) leaves in the buffer exactly the
    /// bytes not written, so the next attempt resumes there: a line is never written half and then again whole.
    private func writeBuffer() throws(FileIOError) {
        guard !buffer.isEmpty, fd >= 0, let stem = currentStem else { return }
        let path = folder + "/" + stem + ".jsonl"
        let fd = self.fd
        var written = 0
        let result = buffer.withUnsafeBytes { bytes in
            Result { () throws(FileIOError) in try FileIO.writeAll(fd, bytes, path: path, progress: &written) }
        }
        if written > 0 { needsFsync = true }
        if written == buffer.count {
            buffer.removeAll(keepingCapacity: true)
        } else if written > 0 {
            buffer.removeSubrange(0..<written)
        }
        try result.get()
    }

    private func syncFile(now: Int64) throws(FileIOError) {
        try FileIO.fsync(fd, path: folder)
        lastFsync = now
        needsFsync = false
    }

    private func closeSegment() throws(FileIOError) {
        guard let stem = currentStem else { return }
        try writeBuffer()
        let path = folder + "/" + stem + ".jsonl"
        try FileIO.fsync(fd, path: path)
        Glibc.close(fd)
        fd = -1
        currentStem = nil
        segmentsClosed += 1
        if options.compressOnClose {
            try compress(path)
        } else {
            closed.append(path)
        }
    }
}
