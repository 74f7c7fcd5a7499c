import Foundation
import TallyCore
import Testing

@testable import UsageLog

@Suite("Segment writer and reader")
struct SegmentTests {
    static let t0 = Timestamp.parse("2026-11-22T10:00:00Z")!

    func event(_ n: Int, at ms: Int64) -> UsageEvent {
        var e = UsageEventTests.sample(id: "evt-\(n)")
        e.timestamp = ms
        return e
    }

    func readAll(_ root: String) throws -> (ids: [String], summaries: [SegmentReadSummary]) {
        var ids: [String] = []
        var summaries: [SegmentReadSummary] = []
        for segment in try LogDirectory.segments(root: root) {
            summaries.append(
                try SegmentReader.read(path: segment.path) { _, line in
                    ids.append(try UsageEvent(jsonLine: line).id)
                })
        }
        return (ids, summaries)
    }

    @Test func rotatesBySizeAndGzipsEveryClosedSegment() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var options = SegmentWriterOptions()
        options.maxBytes = 8 * 1024
        let writer = try SegmentWriter(logDirectory: root, collector: "c1", options: options)
        for n in 0..<200 { try writer.append(event(n, at: Self.t0 + Int64(n)), now: Self.t0 + Int64(n)) }
        try writer.close()

        let segments = try LogDirectory.segments(root: root)
        #expect(segments.count > 5)
        #expect(segments.allSatisfy { $0.isClosed })
        for segment in segments {
            #expect(FileIO.size(segment.path)! > 0)
            #expect(segment.path.hasSuffix(".jsonl.gz"))
        }
        let (ids, summaries) = try readAll(root)
        #expect(ids == (0..<200).map { "evt-\($0)" })
        #expect(summaries.allSatisfy { $0.damage == nil && $0.skippedTailBytes == 0 })
        // Files are real gzip: the system's gzip reads them.
        let gunzip = Process()
        gunzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gunzip.arguments = ["-t"] + segments.map(\.path)
        try gunzip.run()
        gunzip.waitUntilExit()
        #expect(gunzip.terminationStatus == 0)
    }

    /// A full disk cuts writes short. Each retry resumes at the first byte not written and appends no event twice, so
    /// once there is room again the log holds every line exactly once, whole (before, a cut line was glued to a full
    /// copy of itself and each failed retry appended the event again).
    @Test func aFullDiskLosesNothingAndDuplicatesNothing() throws {
        let root = try makeTemporaryDirectory()
        defer {
            FileIO.simulateFullDisk(under: root, room: nil)
            try? FileManager.default.removeItem(atPath: root)
        }
        var options = SegmentWriterOptions()
        options.bufferBytes = 600
        options.maxBytes = 4096
        options.fsync = .never
        options.compressOnClose = false
        let writer = try SegmentWriter(logDirectory: root, collector: "c1", options: options)
        FileIO.simulateFullDisk(under: root, room: 1_500)
        var failures = 0
        func retrying(_ body: () throws -> Void) {
            while true {
                do {
                    try body()
                    return
                } catch {
                    failures += 1
                    // The operator frees some room after a while, twice.
                    if failures == 5 { FileIO.simulateFullDisk(under: root, room: 2_000) }
                    if failures == 10 { FileIO.simulateFullDisk(under: root, room: nil) }
                }
            }
        }
        for n in 0..<60 {
            retrying { try writer.append(event(n, at: Self.t0 + Int64(n)), now: Self.t0 + Int64(n)) }
            if n % 7 == 0 { retrying { try writer.commit(now: Self.t0 + Int64(n)) } }
        }
        retrying { try writer.close() }
        #expect(failures >= 10, "the disk was full for a while")
        let (ids, summaries) = try readAll(root)
        #expect(ids == (0..<60).map { "evt-\($0)" })
        #expect(summaries.allSatisfy { $0.damage == nil && $0.skippedTailBytes == 0 })
    }

    @Test func namesFollowTheFormatAndSort() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var options = SegmentWriterOptions()
        options.maxAgeMilliseconds = 60_000
        let writer = try SegmentWriter(logDirectory: root, collector: "c9", options: options)
        try writer.append(event(1, at: Self.t0), now: Self.t0)
        try writer.append(event(2, at: Self.t0 + 61_000), now: Self.t0 + 61_000)  // past max age: a new segment
        try writer.tick(now: Self.t0 + 200_000)  // idle segment closes on tick
        let names = try LogDirectory.segments(root: root).map { ($0.path as NSString).lastPathComponent }
        #expect(names == ["20261122T100000Z-000001.jsonl.gz", "20261122T100101Z-000001.jsonl.gz"])
    }

    @Test func openSegmentsAreReadableWhileBeingWritten() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = try SegmentWriter(logDirectory: root, collector: "c1")
        for n in 0..<3 { try writer.append(event(n, at: Self.t0), now: Self.t0) }
        try writer.commit(now: Self.t0)
        let segments = try LogDirectory.segments(root: root)
        #expect(segments.count == 1 && !segments[0].isClosed)
        #expect(try readAll(root).ids == ["evt-0", "evt-1", "evt-2"])
    }

    @Test func aCutShortLastLineIsSkippedAndCounted() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let folder = root + "/c1"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let complete = event(1, at: Self.t0).jsonLine + event(2, at: Self.t0).jsonLine
        let partial = String(event(3, at: Self.t0).jsonLine.prefix(57))
        let plain = folder + "/20261122T100000Z-000001.jsonl"
        try (complete + partial).write(toFile: plain, atomically: false, encoding: .utf8)

        let open = try SegmentReader.read(path: plain) { _, _ in }
        #expect(open.lines == 2 && open.skippedTailBytes == 57 && open.damage == nil)

        // The same bytes gzipped, as a crash right before rotation would leave them.
        try SegmentWriter.compress(plain, level: 6)
        let closed = try SegmentReader.read(path: plain + ".gz") { _, _ in }
        #expect(closed.lines == 2 && closed.skippedTailBytes == 57 && closed.damage == nil)
    }

    @Test func aTruncatedGzipFileGivesItsCompleteLinesAndSaysItIsDamaged() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var options = SegmentWriterOptions()
        options.gzipLevel = 1
        let writer = try SegmentWriter(logDirectory: root, collector: "c1", options: options)
        var generator = SystemRandomNumberGenerator()
        for n in 0..<5000 {
            var e = event(n, at: Self.t0)
            e.promptHash = Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
            try writer.append(e, now: Self.t0)
        }
        try writer.close()
        let path = try #require(try LogDirectory.segments(root: root).first).path
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))

        var lines: [Int] = []
        let summary = try SegmentReader.read(path: path) { number, line in
            _ = try UsageEvent(jsonLine: line)  // every line handed over is complete
            lines.append(number)
        }
        #expect(summary.damage != nil)
        #expect(summary.lines > 100 && summary.lines < 5000)
        #expect(lines == Array(1...summary.lines))
    }

    @Test func corruptOrEmptyGzipIsReportedNotThrown() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let garbage = root + "/x.jsonl.gz"
        try Data("this is not gzip at all\n".utf8).write(to: URL(fileURLWithPath: garbage))
        #expect(try SegmentReader.read(path: garbage) { _, _ in }.damage != nil)
        let empty = root + "/y.jsonl.gz"
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        #expect(try SegmentReader.read(path: empty) { _, _ in }.damage != nil)
    }

    @Test func concatenatedGzipMembersAreOneSegment() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let a = root + "/a.jsonl"
        let b = root + "/b.jsonl"
        try event(1, at: Self.t0).jsonLine.write(toFile: a, atomically: false, encoding: .utf8)
        try event(2, at: Self.t0).jsonLine.write(toFile: b, atomically: false, encoding: .utf8)
        try SegmentWriter.compress(a, level: 6)
        try SegmentWriter.compress(b, level: 6)
        var joined = try Data(contentsOf: URL(fileURLWithPath: a + ".gz"))
        joined.append(try Data(contentsOf: URL(fileURLWithPath: b + ".gz")))
        let both = root + "/both.jsonl.gz"
        try joined.write(to: URL(fileURLWithPath: both))
        var ids: [String] = []
        let summary = try SegmentReader.read(path: both) { _, line in ids.append(try UsageEvent(jsonLine: line).id) }
        #expect(ids == ["evt-1", "evt-2"] && summary.damage == nil)
    }

    @Test func aNewWriterFinishesWhatACrashLeftBehind() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let folder = root + "/c1"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // A crash mid-segment: plain file with a torn last line.
        let torn = folder + "/20261122T090000Z-000001.jsonl"
        try (event(1, at: Self.t0).jsonLine + "{\"v\":1,\"id\":\"tor").write(toFile: torn, atomically: false, encoding: .utf8)
        // A crash between rename and unlink: the plain file and its complete gzip twin.
        let twin = folder + "/20261122T091000Z-000001.jsonl"
        try event(2, at: Self.t0).jsonLine.write(toFile: twin, atomically: false, encoding: .utf8)
        try SegmentWriter.compress(twin, level: 6)
        try event(2, at: Self.t0).jsonLine.write(toFile: twin, atomically: false, encoding: .utf8)
        // A crash mid-compression: a temporary file.
        try "junk".write(toFile: folder + "/20261122T092000Z-000001.jsonl.gz.tmp", atomically: false, encoding: .utf8)

        let writer = try SegmentWriter(logDirectory: root, collector: "c1")
        try writer.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }.sorted()
        #expect(files == ["20261122T090000Z-000001.jsonl.gz", "20261122T091000Z-000001.jsonl.gz"])
        let (ids, summaries) = try readAll(root)
        #expect(ids == ["evt-1", "evt-2"])
        #expect(summaries[0].skippedTailBytes == 16)
    }

    @Test func oneWriterPerCollectorFolder() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let first = try SegmentWriter(logDirectory: root, collector: "c1")
        let error = #expect(throws: FileIOError.self) { _ = try SegmentWriter(logDirectory: root, collector: "c1") }
        #expect(error?.code == .locked)
        _ = try SegmentWriter(logDirectory: root, collector: "c2")
        withExtendedLifetime(first) {}
    }

    @Test func readersIgnoreWhatIsNotASegment() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let folder = root + "/c1"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in ["notes.txt", "20261122T100000Z-000001.jsonl.gz.tmp", "x.jsonl", "20261122T100000Z-.jsonl", ".writer.lock"] {
            #expect(FileManager.default.createFile(atPath: folder + "/" + name, contents: Data()))
        }
        #expect(try LogDirectory.segments(root: root).isEmpty)
    }
}
