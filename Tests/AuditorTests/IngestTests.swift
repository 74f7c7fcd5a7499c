import Foundation
import GRDB
import Report
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

@Suite("Ingest into the ledger")
struct IngestTests {
    typealias F = AuditFixture
    func money(_ text: String) throws -> Money { try Money(parsing: text) }

    /// Hand-computed (m1 before 2026-11-15: input 1.00, output 2.00, cached 0.50, cache write 1.25, reasoning 4.00 per M;
    /// from 2026-11-15 input 1.50; m2: 0.15 / 0.60):
    /// A (m1, 11-10): 4,000 plain in × 1e-6 = 0.004; 4,000 cached × 0.5e-6 = 0.002; 2,000 written × 1.25e-6 = 0.0025;
    ///   2,000 plain out × 2e-6 = 0.004; 1,000 reasoning × 4e-6 = 0.004 → 0.0165.
    /// B (same usage at the change, 11-15 00:00Z): plain input 4,000 × 1.5e-6 = 0.006 → 0.0185.
    /// C (m2, k-dan): 1,000,000 × 0.15e-6 + 100,000 × 0.6e-6 = 0.21. D: failed, no usage → 0.
    /// E: failed with usage, m2, 10,000 in → 0.0015. F: model without a price → unpriced, not 0.
    /// G: key not in the config, m2, 1,000,000 in → 0.15, attributed to `unknown`.
    static let usageA = UsageEvent.Usage(input: 10_000, output: 3_000, cachedInput: 4_000, cacheWrite: 2_000, reasoning: 1_000)
    static var callsAtoG: [String] {
        [
            F.line(ts: "2026-11-10T09:00:00Z", usage: usageA),
            F.line(ts: "2026-11-15T00:00:00Z", usage: usageA),
            F.line(ts: "2026-11-20T12:00:00Z", key: "k-dan", model: "m2", usage: .init(input: 1_000_000, output: 100_000)),
            F.line(ts: "2026-11-20T12:01:00Z", key: "k-dan", model: "m2", outcome: .upstreamError, status: 500, usage: nil),
            F.line(
                ts: "2026-11-20T12:02:00Z", key: "k-dan", model: "m2", outcome: .upstreamError, status: 500,
                usage: .init(input: 10_000, output: 0)),
            F.line(ts: "2026-11-21T08:00:00Z", model: "mystery-model", usage: .init(input: 500, output: 50)),
            F.line(ts: "2026-11-21T09:00:00Z", key: "k-gone", model: "m2", usage: .init(input: 1_000_000, output: 0)),
        ]
    }

    @Test func pricesEveryCallExactlyAndAttributesIt() async throws {
        let f = try F()
        defer { f.remove() }
        try f.segment(Self.callsAtoG)
        let result = try await f.audit()
        #expect(result.totals.events == 7)
        #expect(result.totals.unpriced == 1)
        #expect(result.totals.failed == 2)
        #expect(result.totals.unknownKeys == ["k-gone": 1])
        #expect(result.totals.unpricedModels == ["mystery-model": 1])

        let byTeam = try f.breakdown(by: "team")
        let lines = Dictionary(uniqueKeysWithValues: byTeam.lines.map { ($0.values[0], $0.totals) })
        #expect(lines["search"]?.cost == (try money("0.035")))
        #expect(lines["search"]?.requests == 3)
        #expect(lines["search"]?.unpriced == 1)
        #expect(lines["support"]?.cost == (try money("0.2115")))
        #expect(lines["support"]?.failed == 2)
        #expect(lines[AttributionQuery.unknown]?.cost == (try money("0.15")))
        #expect(byTeam.total.cost == (try money("0.3965")))
        #expect(byTeam.total.requests == 7)
        #expect(byTeam.unpriced.map(\.model) == ["mystery-model"])
        // The detailed rollup (end users, tags) adds up to the same as the small one.
        #expect(try f.breakdown(by: "team,end_user,tag:env").total == byTeam.total)
        #expect(byTeam.unpriced.first?.totals.tokens.input == 500)

        // Each priced call names the entry that priced it.
        let sources: [String] = try f.query(
            """
            SELECT p.source || ' ' || COALESCE(p.from_ms, '-') || ' ' || p.input FROM events e JOIN prices p ON p.id = e.price
            WHERE e.ts < 1794787200000 ORDER BY e.ts
            """)
        #expect(sources == ["config - 1.000000", "config 1794700800000 1.500000"])
        let perDay = try f.breakdown(by: "day,model")
        let day15 = perDay.lines.first { $0.values == ["2026-11-15", "m1"] }
        #expect(day15?.totals.cost == (try money("0.0185")))
    }

    @Test func anotherRunAndACopiedFileCountNothingTwice() async throws {
        let f = try F()
        defer { f.remove() }
        let path = try f.segment(Self.callsAtoG)
        _ = try await f.audit()
        let first = try f.breakdown(by: "team,model")

        let again = try await f.audit()
        #expect(again.totals.segmentsRead == 0 && again.totals.segmentsUnchanged == 1 && again.totals.events == 0)

        try FileManager.default.createDirectory(atPath: f.root + "/log/c1-copy", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: path, toPath: f.root + "/log/c1-copy/20261110T000000Z-000001.jsonl.gz")
        let copied = try await f.audit()
        #expect(copied.totals.segmentsRead == 1 && copied.totals.events == 0 && copied.totals.duplicates == 7)
        #expect(try f.breakdown(by: "team,model") == first)
    }

    @Test func anOpenSegmentIsReadOnwardAndAgainWhenClosedWithoutDoubleCounting() async throws {
        let f = try F()
        defer { f.remove() }
        let calls = Self.callsAtoG
        let plain = try f.segment(Array(calls[0..<3]), open: true)

        let closedOnly = try await f.audit()
        #expect(closedOnly.totals.events == 0 && closedOnly.totals.segmentsLeft == 1)

        let first = try await f.audit(includeOpen: true)
        #expect(first.totals.events == 3)

        // Two more lines and half of a third, still being written.
        let handle = try #require(FileHandle(forWritingAtPath: plain))
        handle.seekToEndOfFile()
        handle.write(Data((calls[3] + calls[4] + String(calls[5].prefix(20))).utf8))
        let second = try await f.audit(includeOpen: true)
        #expect(second.totals.events == 2 && second.totals.quarantined == 0)

        // The line completes; the collector closes the segment (gzip, then the plain file goes).
        handle.write(Data(String(calls[5].dropFirst(20)).utf8))
        try handle.close()
        try Gzip.compressFile(source: plain, destination: plain + ".gz")
        try FileManager.default.removeItem(atPath: plain)
        let closed = try await f.audit(includeOpen: true)
        #expect(closed.totals.events == 1 && closed.totals.duplicates == 5)
        #expect(try f.breakdown().total.requests == 6)
        #expect(try f.breakdown().total.cost == (try money("0.2465")))
    }

    /// A plain segment with a newer one beside it was closed but not compressed (a full disk): it is read without
    /// `--include-open`, so its calls count toward budgets now; the newest plain segment may still be written and waits.
    @Test func aClosedSegmentLeftUncompressedIsIngested() async throws {
        let f = try F()
        defer { f.remove() }
        let calls = Self.callsAtoG
        let stuck = try f.segment(Array(calls[0..<3]), stem: "20261110T000000Z-000001", open: true)
        try f.segment(Array(calls[3..<5]), stem: "20261110T010000Z-000001")
        try f.segment(Array(calls[5..<7]), stem: "20261110T020000Z-000001", open: true)
        let first = try await f.audit()
        #expect(first.totals.events == 5 && first.totals.segmentsLeft == 1)

        // The collector manages to compress it later: the same calls, counted once.
        try Gzip.compressFile(source: stuck, destination: stuck + ".gz")
        try FileManager.default.removeItem(atPath: stuck)
        let second = try await f.audit()
        #expect(second.totals.events == 0 && second.totals.duplicates == 3)
        #expect(try f.breakdown().total.requests == 5)
    }

    @Test func eachKindOfBadLineIsQuarantinedWithItsLineAndReason() async throws {
        let f = try F()
        defer { f.remove() }
        let good = F.line(ts: "2026-11-10T09:00:00Z", usage: .init(input: 1_000_000, output: 0))
        let missingModel = good.replacingOccurrences(of: #""model":"m1","#, with: "")
        let negative = F.line(ts: "2026-11-10T09:01:00Z", usage: .init(input: 5, output: 1))
            .replacingOccurrences(of: #""output":1"#, with: #""output":-1"#)
        let future = F.line(ts: "2026-11-10T09:02:00Z", usage: nil).replacingOccurrences(of: #"{"v":1,"#, with: #"{"v":2,"#)
        try f.segment([
            good, "this is not JSON\n", missingModel, negative, future,
            F.line(ts: "2026-11-10T09:03:00Z", usage: .init(input: 1_000_000, output: 0)),
        ])
        let result = try await f.audit()
        #expect(result.totals.events == 2)
        #expect(result.totals.quarantined == 4)
        let kinds: [String] = try f.query("SELECT line || ' ' || kind FROM quarantine ORDER BY line")
        #expect(kinds == ["2 not_json", "3 missing_field", "4 invalid_usage", "5 future_version"])
        let texts: [String] = try f.query("SELECT CAST(text AS TEXT) FROM quarantine WHERE line = 2")
        #expect(texts == ["this is not JSON"])
        #expect(try f.breakdown().total.cost == (try money("2")))
    }

    @Test func aCutShortGzipHasItsCompleteLinesIngestedAndIsReportedDamaged() async throws {
        let f = try F()
        defer { f.remove() }
        let base = Timestamp.parse("2026-11-10T00:00:00Z")!
        let lines = (0..<20_000).map { (i: Int) -> String in
            let ts = Timestamp.format(milliseconds: base + Int64(i) * 1000)
            let env = i % 2 == 0 ? "prod" : "dev"
            return F.line(ts: ts, usage: UsageEvent.Usage(input: Int64(i % 97), output: 1), user: "end-user-\(i % 13)", tags: ["env": env])
        }
        let path = try f.segment(lines)
        let size = try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()

        let result = try await f.audit()
        #expect(result.totals.damaged == ["c1/20261110T000000Z-000001.jsonl.gz"])
        #expect(result.totals.events > 1_000 && result.totals.events < 20_000)
        let stored: [String] = try f.query("SELECT damage FROM segments")
        #expect(stored.count == 1 && !stored[0].isEmpty)
        // The damaged file is not re-read while it stays as it is.
        #expect(try await f.audit().totals.segmentsRead == 0)
        let byTag = try f.breakdown(by: "tag:env")
        #expect(Set(byTag.lines.map { $0.values[0] }) == ["prod", "dev"])
    }

    /// Bad lines and damaged segments belong to the month of their data, not of the audit that found them: an October
    /// segment read by a November audit is October's data quality.
    @Test func dataQualityIsReportedInTheMonthOfTheData() async throws {
        let f = try F()
        defer { f.remove() }
        let good = F.line(ts: "2026-10-31T23:40:00Z", usage: .init(input: 10, output: 1))
        let badUsage = F.line(ts: "2026-10-31T23:41:00Z", usage: .init(input: 5, output: 1))
            .replacingOccurrences(of: #""output":1"#, with: #""output":-1"#)
        // October's segment: a line whose ts is still readable, and one that is not JSON (dated by its segment).
        try f.segment([good, badUsage, "{not json at all\n"], stem: "20261031T233000Z-000001")
        // November's segment, cut short: a damaged November file.
        let november = (0..<5_000).map {
            F.line(
                ts: Timestamp.format(milliseconds: Timestamp.parse("2026-11-10T00:00:00Z")! + Int64($0) * 1000),
                usage: .init(input: 1, output: 1))
        }
        let path = try f.segment(november, stem: "20261110T000000Z-000001")
        let size = try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()
        _ = try await f.audit(asOf: "2026-11-20T00:00:00Z")

        let ledger = try Ledger(path: f.ledgerPath, readOnly: true)
        func report(_ month: String) throws -> PeriodReport {
            try PeriodReportBuilder.build(
                ledger: ledger, config: f.config, period: try Period(parsing: month), asOf: Timestamp.parse("2026-11-20T00:00:00Z")!)
        }
        let october = try report("2026-10")
        #expect(
            october.quarantine.map { "\($0.line) \($0.kind) \(Timestamp.format(milliseconds: $0.ts))" } == [
                "2 invalid_usage 2026-10-31T23:41:00.000Z", "3 not_json 2026-10-31T23:30:00.000Z",
            ])
        #expect(october.dataQuality.damagedSegments.isEmpty)
        let novemberReport = try report("2026-11")
        #expect(novemberReport.quarantine.allSatisfy { $0.kind == "cut_short" })
        #expect(novemberReport.dataQuality.damagedSegments.map(\.path) == ["c1/20261110T000000Z-000001.jsonl.gz"])
        // quarantine.csv names the data's time.
        #expect(QuarantineCSV().render(october).contains(",2026-10-31T23:41:00Z"))
    }

    @Test func aSecondAuditWaitsForTheLockHolder() async throws {
        let f = try F()
        defer { f.remove() }
        try FileManager.default.createDirectory(atPath: f.root + "/ledger", withIntermediateDirectories: true)
        let lock = try AuditLock(ledgerPath: f.ledgerPath)
        do {
            _ = try await f.audit()
            Issue.record("the audit ran while the lock was held")
        } catch let error as AuditError {
            #expect(error.code == .locked)
            #expect(error.message.contains("pid \(getpid())"))
        }
        lock.release()
        _ = try await f.audit()
    }

    @Test func aNewTimezoneRecountsTheDays() async throws {
        let f = try F()
        defer { f.remove() }
        // 23:30 UTC on the 10th is the 11th in Berlin.
        try f.segment([F.line(ts: "2026-11-10T23:30:00Z", usage: .init(input: 1_000_000, output: 0))])
        _ = try await f.audit()
        #expect(try f.breakdown("2026-11-10").total.requests == 1)

        let berlin = try f.reconfigured(F.yaml.replacingOccurrences(of: "timezone: UTC", with: "timezone: Europe/Berlin"))
        _ = try await berlin.audit()
        #expect(try berlin.breakdown("2026-11-10").total.requests == 0)
        #expect(try berlin.breakdown("2026-11-11").total.requests == 1)
    }
}

/// A ledger written before quarantined lines had their data's time gets it on upgrade.
@Suite("Ledger upgrades")
struct LedgerUpgradeTests {
    @Test func quarantinedLinesGetTheirDataTimeOnUpgrade() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tally-upgrade-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let queue = try DatabaseQueue(path: path)
        try Schema.migrator.migrate(queue, upTo: "v8-price-dimensions")
        try queue.write { db in
            try db.execute(sql: "INSERT INTO runs (id, started_at, as_of) VALUES (1, 1796000000000, 1796000000000)")
            try db.execute(
                sql: """
                    INSERT INTO segments (id, path, collector, stem, closed, size, mtime, offset, lines, events, duplicates, quarantined, run)
                    VALUES (1, 'c1/20261031T233000Z-000001.jsonl.gz', 'c1', '20261031T233000Z-000001', 1, 10, 0, 0, 3, 1, 0, 2, 1)
                    """)
            try db.execute(
                sql: """
                    INSERT INTO quarantine (segment, line, kind, reason, length, text, run) VALUES
                        (1, 2, 'invalid_usage', 'r', 10, CAST('{"v":1,"ts":"2026-10-31T23:41:00Z","output":-1}' AS BLOB), 1),
                        (1, 3, 'not_json', 'r', 5, CAST('{not' AS BLOB), 1)
                    """)
        }
        try Schema.migrator.migrate(queue)
        let times: [Int64] = try queue.read { db in try Int64.fetchAll(db, sql: "SELECT ts FROM quarantine ORDER BY line") }
        #expect(times == [Timestamp.parse("2026-10-31T23:41:00Z")!, Timestamp.parse("2026-10-31T23:30:00Z")!])
    }
}
