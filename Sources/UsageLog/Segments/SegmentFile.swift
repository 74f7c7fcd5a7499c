import TallyCore

/// A segment file in a log directory: `<log_dir>/<collector>/<yyyyMMdd'T'HHmmss'Z'>-<seq>.jsonl[.gz]`.
public struct SegmentFile: Sendable, Hashable, Comparable {
    /// Full path of the file.
    public var path: String
    /// The collector folder it lives in.
    public var collector: String
    /// The name without `.jsonl` or `.jsonl.gz`: `20261122T154301Z-000001`.
    public var stem: String
    /// When the segment was opened, seconds since the epoch (from the name).
    public var openedAt: Int64
    /// The sequence number from the name.
    public var sequence: Int
    /// True for a closed, gzipped segment; false for one still being written (or left by a crash).
    public var isClosed: Bool

    /// The file name for a segment opened at `milliseconds` with `sequence`.
    public static func stem(openedAt milliseconds: Int64, sequence: Int) -> String {
        let digits = String(sequence)
        return Timestamp.formatCompact(milliseconds: milliseconds) + "-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// Parses a file name; nil for anything that is not a segment (temporary files, locks, strays).
    public init?(path: String, collector: String, name: String) {
        let stem: Substring
        if name.hasSuffix(".jsonl.gz") {
            stem = name.dropLast(9)
            isClosed = true
        } else if name.hasSuffix(".jsonl") {
            stem = name.dropLast(6)
            isClosed = false
        } else {
            return nil
        }
        let parts = stem.split(separator: "-", maxSplits: 1)
        guard parts.count == 2, parts[0].utf8.count == 16, let sequence = Int(parts[1]), sequence >= 0,
            parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
        else { return nil }
        let t = parts[0]
        let iso =
            "\(t.prefix(4))-\(t.dropFirst(4).prefix(2))-\(t.dropFirst(6).prefix(2))T\(t.dropFirst(9).prefix(2)):\(t.dropFirst(11).prefix(2)):\(t.dropFirst(13).prefix(2))Z"
        guard t.dropFirst(8).first == "T", t.last == "Z", let millis = Timestamp.parse(iso) else { return nil }
        self.path = path
        self.collector = collector
        self.stem = String(stem)
        openedAt = millis / 1000
        self.sequence = sequence
    }

    public static func < (lhs: SegmentFile, rhs: SegmentFile) -> Bool {
        (lhs.collector, lhs.openedAt, lhs.sequence, lhs.isClosed ? 1 : 0) < (
            rhs.collector, rhs.openedAt, rhs.sequence, rhs.isClosed ? 1 : 0
        )
    }
}

/// Lists the segments of a log directory: one folder per collector.
public enum LogDirectory {
    /// Every segment under `root`, closed and open, sorted by collector, then time, then sequence.
    public static func segments(root: String) throws(FileIOError) -> [SegmentFile] {
        guard FileIO.isDirectory(root) else {
            throw FileIOError(code: .io, message: "log directory \(root) does not exist")
        }
        var result: [SegmentFile] = []
        for collector in try FileIO.list(root).sorted() where !collector.hasPrefix(".") {
            let folder = root + "/" + collector
            guard FileIO.isDirectory(folder) else { continue }
            result.append(contentsOf: try segments(collectorFolder: folder, collector: collector))
        }
        return result.sorted()
    }

    /// The segments in one collector's folder.
    public static func segments(collectorFolder folder: String, collector: String) throws(FileIOError) -> [SegmentFile] {
        try FileIO.list(folder).compactMap { SegmentFile(path: folder + "/" + $0, collector: collector, name: $0) }.sorted()
    }
}
