import Foundation
import GRDB
import Report
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// Duplicate prompts, near duplicates, retry loops and runaway keys, from hand-built calls with exact expectations.
@Suite("Waste")
struct WasteTests {
    typealias F = AuditFixture

    static func yaml(extra: String = "") -> String {
        """
        currency: USD
        providers:
          - {name: openai, kind: openai, base_url: "http://127.0.0.1:9", api_key_env: OPENAI_API_KEY}
        orgs:
          - {id: acme}
        teams:
          - {id: search, org: acme}
          - {id: support, org: acme}
        users:
          - {id: alice, team: search}
          - {id: bob, team: search}
          - {id: dan, team: support}
        keys:
          - {id: k-alice, sha256: 05ef46ef3bf75c23f8325bf380d2e87f16654cbe9c16237722c46ed7c96e2006, user: alice}
          - {id: k-bob, sha256: 6b77df8c9a51999f7bb289d4568008e5458884006a92b2a6d537338f899e6833, user: bob}
          - {id: k-dan, sha256: 011a2419fe707d8ef9099b0cb644cd5aebaa09664115244fd23c48b41c0dba55, user: dan}
          - {id: k-oncall, sha256: d5ad5254eededde7e0e4efd6d1dee0fb1b9d286f3d5a973315adad1b96bc8175, user: dan, priority: true}
        pricing:
          models:
            - {model: m1, input: 1.00, output: 0}
            - {model: m2, input: 2.00, output: 0}
        collector:
          log_dir: log
          revocations: var/revoked.tsv
        audit:
          db: ledger/tally.sqlite
          timezone: Europe/Berlin
        \(extra)
        """
    }

    /// A call of `prompt` costing `dollars` on m1 (a million input tokens per dollar).
    static func call(
        _ ts: String, _ prompt: String, key: String = "k-alice", model: String = "m1", dollars: Int64 = 1,
        outcome: UsageEvent.Outcome = .ok, sim: UInt64? = nil, id: String? = nil
    ) -> String {
        F.line(
            id: id, ts: ts, key: key, model: model, outcome: outcome, status: outcome == .ok ? 200 : 500,
            usage: .init(input: dollars * 1_000_000 / (model == "m2" ? 2 : 1), output: 0), prompt: prompt, sim: sim)
    }

    func findings(_ f: F, asOf: String = "2026-11-30T00:00:00Z") async throws -> WasteResult {
        try await f.outcome(asOf: asOf).waste
    }

    @Test func repeatsOfASuccessfulPromptWithinTheWindowAreWasteOncePerTeamAndModel() async throws {
        let f = try F(yaml: Self.yaml())
        defer { f.remove() }
        try f.segment([
            // Opened on the last evening of October (Berlin): repeats in November are this month's waste.
            Self.call("2026-10-31T21:00:00Z", "summarise Q3"),
            Self.call("2026-11-01T08:00:00Z", "summarise Q3", key: "k-bob"),
            Self.call("2026-11-01T20:00:00Z", "summarise Q3", dollars: 3),
            // More than 24 h after the call that opened the window: useful again, and it opens a new window.
            Self.call("2026-11-02T22:00:00Z", "summarise Q3"),
            Self.call("2026-11-03T09:00:00Z", "summarise Q3", dollars: 2),
            // Another team, another model: not duplicates of the above.
            Self.call("2026-11-01T09:00:00Z", "summarise Q3", key: "k-dan"),
            Self.call("2026-11-01T09:30:00Z", "summarise Q3", model: "m2"),
            // A failed call opens nothing: the call after it is the first useful one.
            Self.call("2026-11-05T10:00:00Z", "translate", outcome: .upstreamError),
            Self.call("2026-11-05T10:10:00Z", "translate"),
        ])
        let waste = try await findings(f)
        let exact = waste.findings.filter { $0.kind == .exactDuplicate }
        #expect(exact.count == 1)
        let cluster = try #require(exact.first)
        #expect(cluster.subject == String(Hex.sha256("summarise Q3").prefix(12)))
        #expect((cluster.model, cluster.team) == ("m1", "search"))
        #expect(cluster.keys == ["k-alice", "k-bob"] && cluster.users == ["alice", "bob"])
        #expect((cluster.calls, cluster.repeats) == (5, 3))
        #expect(cluster.cost == (try Money(parsing: "6.00")))
        #expect(cluster.firstSeen == Timestamp.parse("2026-10-31T21:00:00Z") && cluster.lastSeen == Timestamp.parse("2026-11-03T09:00:00Z"))
        #expect(waste.total == (try Money(parsing: "6.00")))
        #expect(waste.periodLabel == "2026-11")

        // The findings are in the ledger for the reports, and a second run replaces them rather than adding.
        _ = try await findings(f)
        let ledger = try Ledger(path: f.ledgerPath, readOnly: true)
        #expect(try WasteScan.stored(ledger: ledger, label: "2026-11") == waste.findings)
    }

    /// Four calls of one prompt whose ids another tool made: text, and a UUIDv7 whose time is a day off. The ledger
    /// lists these apart (`events_unordered`).
    static var callsWithOddIDs: [String] {
        [
            Self.call("2026-11-10T10:00:00Z", "classify", id: "evt-0001"),
            Self.call("2026-11-10T11:00:00Z", "classify"),
            Self.call("2026-11-10T12:00:00Z", "classify", id: EventID.make(milliseconds: Timestamp.parse("2026-11-11T12:00:00Z")!)),
            Self.call("2026-11-10T13:00:00Z", "classify", id: "evt-0004"),
        ]
    }

    @Test func callsWhoseIdsDoNotGiveTheirTimeAreStillSeenInTimeOrder() async throws {
        let f = try F(yaml: Self.yaml())
        defer { f.remove() }
        try f.segment(Self.callsWithOddIDs)
        let waste = try await findings(f)
        let cluster = try #require(waste.findings.first { $0.kind == .exactDuplicate })
        #expect((cluster.calls, cluster.repeats, cluster.cost) == (4, 3, try Money(parsing: "3.00")))
        #expect(cluster.firstSeen == Timestamp.parse("2026-11-10T10:00:00Z"))
        let unordered: [Int] = try f.query("SELECT COUNT(*) FROM events_unordered")
        #expect(unordered == [3])
    }

    @Test func aLedgerFromBeforeTheScanBlocksGetsThemOnceAndFindsTheSame() async throws {
        let f = try F(yaml: Self.yaml())
        defer { f.remove() }
        try f.segment(
            Self.callsWithOddIDs + [
                Self.call("2026-11-10T12:30:00Z", "classify", key: "k-bob", outcome: .rejectedRevoked),
                Self.call("2026-11-12T09:00:00Z", "draft a reply to Ann", sim: 0x0123_4567_89AB_CDEF),
                Self.call("2026-11-12T09:05:00Z", "draft a reply to Anne", sim: 0x0123_4567_89AB_CDEF ^ 0b101),
            ] + (0..<6).map { Self.call("2026-11-14T08:00:\(10 + $0)Z", "retry me", outcome: .upstreamError) })
        let before = try await findings(f)
        let blocks: [Int] = try f.query("SELECT SUM(calls) FROM scan_blocks")
        #expect(blocks == [12])  // every call but the refused one

        // The ledger as Tally wrote it before the blocks: no table, and the migration not yet applied.
        try await DatabaseQueue(path: f.ledgerPath).write { db in
            try db.execute(sql: "DROP TABLE scan_blocks; DELETE FROM grdb_migrations WHERE identifier = 'v7-scan-blocks'")
        }
        let after = try await findings(f)
        #expect(after.findings == before.findings && after.total == before.total)
        #expect(Set(after.findings.map(\.kind)) == [.exactDuplicate, .nearDuplicate, .retryLoop])
        #expect(try f.query("SELECT SUM(calls) FROM scan_blocks") == blocks)
    }

    @Test func nearDuplicatesAreReportedApartAndCountOnlyWhenTheConfigSays() async throws {
        let base: UInt64 = 0x0123_4567_89AB_CDEF
        let lines = [
            Self.call("2026-11-10T10:00:00Z", "draft a reply to Ann", sim: base),
            Self.call("2026-11-10T10:05:00Z", "draft a reply to Anne", dollars: 2, sim: base ^ 0b111),  // 3 bits apart
            Self.call("2026-11-10T10:06:00Z", "draft a reply to Anna", dollars: 4, sim: base ^ 0xF000_0000_0000_0000),  // 4 bits
            Self.call("2026-11-10T10:07:00Z", "draft a reply to Bo", key: "k-dan", sim: base ^ 0b1),  // another team
        ]
        for (extra, counted) in [("", false), ("  near_duplicates: {max_distance: 4, count_as_waste: true}", true)] {
            let f = try F(yaml: Self.yaml(extra: extra))
            defer { f.remove() }
            try f.segment(lines)
            let waste = try await findings(f)
            let near = waste.findings.filter { $0.kind == .nearDuplicate }
            #expect(near.count == 1)
            let cluster = try #require(near.first)
            #expect(cluster.subject == String(Hex.sha256("draft a reply to Ann").prefix(12)))
            #expect(cluster.countsAsWaste == counted)
            if counted {
                // Within 4 bits, the third prompt joins the cluster too.
                #expect((cluster.calls, cluster.cost) == (3, try Money(parsing: "6.00")))
                #expect(waste.total == (try Money(parsing: "6.00")))
            } else {
                #expect((cluster.calls, cluster.repeats, cluster.cost) == (2, 1, try Money(parsing: "2.00")))
                #expect(waste.total == .zero)
            }
            #expect(waste.count(.exactDuplicate) == 0)
        }
    }

    /// The report does not hold a month's findings: it sums them in one pass and reads them again, in waste.csv's order,
    /// as the file is written. Both must agree with what the rows themselves give, ties included.
    @Test func theReportReadsTheStoredFindingsInFileOrderAndTheirTotalsAgree() async throws {
        let f = try F(yaml: Self.yaml())
        defer { f.remove() }
        var lines: [String] = []
        // 24 pairs of prompts, each repeated by search and by support at the same price: equal costs and equal
        // subjects in two teams, a pair's two prompts at the same times (only their subjects tell them apart), and more
        // than the page's 15 at the top cost.
        for p in 0..<24 {
            let day = String(format: "2026-11-%02dT%02d", 2 + p % 5, 8 + p % 7)
            for (key, minute) in [("k-alice", 0), ("k-alice", 5), ("k-dan", 1), ("k-dan", 6)] {
                for prompt in ["prompt \(p)", "twin \(p)"] {
                    lines.append(
                        Self.call("\(day):\(String(format: "%02d", minute + p % 3)):00Z", prompt, key: key, dollars: Int64(1 + p % 2)))
                }
            }
        }
        for second in [0, 10, 20, 30, 40, 50] {
            lines.append(
                Self.call(
                    String(format: "2026-11-20T09:00:%02dZ", second), "retry me", key: "k-bob", outcome: second < 40 ? .upstreamError : .ok)
            )
        }
        try f.segment(lines)
        let waste = try await findings(f)
        #expect(waste.count(.exactDuplicate) == 97 && waste.count(.retryLoop) == 1)

        let ledger = try Ledger(path: f.ledgerPath, readOnly: true)
        let report = try PeriodReportBuilder.build(
            ledger: ledger, config: f.config, period: try Period(parsing: "2026-11"),
            asOf: Timestamp.parse("2026-11-30T00:00:00Z")!)
        var rows: [WasteFinding] = []
        try report.waste.forEach { rows.append($0) }
        #expect(rows.count == waste.findings.count)
        #expect(
            Set(rows.map { "\($0.kind) \($0.subject) \($0.team) \($0.firstSeen)" })
                == Set(waste.findings.map { "\($0.kind.rawValue) \($0.subject) \($0.team) \($0.firstSeen)" }))
        // waste.csv's order: by kind, costliest first, then oldest, then by subject.
        let rank = WasteKind.known
        for (a, b) in zip(rows, rows.dropFirst()) {
            let (x, y) = (
                (rank.firstIndex(of: a.kind)!, -a.cost.picos, a.firstSeen), (rank.firstIndex(of: b.kind)!, -b.cost.picos, b.firstSeen)
            )
            #expect(x < y || (x == y && !b.subject.utf8.lexicographicallyPrecedes(a.subject.utf8)), "\(a) before \(b)")
        }
        // The totals and the page's list, from the ledger, are those of the rows in memory.
        let inMemory = WasteFindings(rows)
        #expect(report.waste.kinds == inMemory.kinds)
        #expect(report.waste.costliest == inMemory.costliest)
        #expect(report.waste.costliest.count == WasteFindings.costliestShown)
        #expect(report.waste.total == waste.total)
        // The audit stored them in the file's order, so the file needs no sort.
        #expect((report.waste.source as? LedgerWasteRows)?.inOrder == true)

        // Rows stored in another order (an older Tally broke ties otherwise) are sorted when read: the same file.
        let file = try WasteCSV().text(report)
        let writable = try Ledger(path: f.ledgerPath)
        try writable.access { db in
            try db.execute(
                sql: """
                    CREATE TEMP TABLE reversed AS SELECT * FROM waste WHERE period = '2026-11' ORDER BY rowid DESC;
                    DELETE FROM waste WHERE period = '2026-11';
                    INSERT INTO waste SELECT * FROM reversed;
                    """)
        }
        let again = try PeriodReportBuilder.build(
            ledger: ledger, config: f.config, period: try Period(parsing: "2026-11"),
            asOf: Timestamp.parse("2026-11-30T00:00:00Z")!)
        #expect((again.waste.source as? LedgerWasteRows)?.inOrder == false)
        #expect(try WasteCSV().text(again) == file)
        #expect(again.waste.costliest == report.waste.costliest && again.waste.kinds == report.waste.kinds)

        // `tally report` builds and writes in one snapshot: an audit replacing the rows meanwhile changes nothing in it.
        let inSnapshot = try ledger.snapshot { () throws(AuditError) -> String in
            let report = try PeriodReportBuilder.build(
                ledger: ledger, config: f.config, period: try Period(parsing: "2026-11"),
                asOf: Timestamp.parse("2026-11-30T00:00:00Z")!)
            try writable.access { db in try db.execute(sql: "DELETE FROM waste WHERE period = '2026-11'") }
            do throws(FileIOError) { return try WasteCSV().text(report) } catch { throw AuditError(.io, error.message) }
        }
        #expect(inSnapshot == file)
        let after = try PeriodReportBuilder.build(
            ledger: ledger, config: f.config, period: try Period(parsing: "2026-11"),
            asOf: Timestamp.parse("2026-11-30T00:00:00Z")!)
        #expect(after.waste.count == 0)
    }

    @Test func fiveIdenticalPromptsFromOneKeyWithinTwoMinutesAreARetryLoop() async throws {
        let f = try F(yaml: Self.yaml())
        defer { f.remove() }
        var lines: [String] = []
        // k-dan: three failures, then two successes, within 100 s. k-bob: only four within two minutes.
        for (i, second) in [0, 20, 45, 70, 100].enumerated() {
            let ts = Timestamp.format(milliseconds: Timestamp.parse("2026-11-12T09:00:00Z")! + Int64(second) * 1000)
            lines.append(Self.call(ts, "fix the build", key: "k-dan", outcome: i < 3 ? .upstreamError : .ok))
        }
        for minute in 0..<4 { lines.append(Self.call("2026-11-12T10:0\(minute):00Z", "ping", key: "k-bob")) }
        lines.append(Self.call("2026-11-12T10:05:00Z", "ping", key: "k-bob"))
        try f.segment(lines)
        let loops = try await findings(f).findings.filter { $0.kind == .retryLoop }
        #expect(loops.count == 1)
        let loop = try #require(loops.first)
        #expect((loop.subject, loop.calls, loop.repeats, loop.errors) == ("k-dan", 5, 4, 3))
        #expect(loop.firstSeen == Timestamp.parse("2026-11-12T09:00:00Z") && loop.lastSeen == Timestamp.parse("2026-11-12T09:01:40Z"))
        #expect(loop.detail == "5 identical prompts (\(Hex.sha256("fix the build").prefix(12))), 3 failed")
    }

    @Test func aRunawayKeyIsRevokedForItsCoolDownButNeverAPriorityKey() async throws {
        let rules = "  runaway: {max_requests_per_minute: 10, max_spend_per_hour: 1000.00, action: revoke, cooldown: 30m}"
        let f = try F(yaml: Self.yaml(extra: rules))
        defer { f.remove() }
        var lines: [String] = []
        // Twelve calls in 55 seconds from k-alice and from the priority key; ten from k-bob (at the limit, not over).
        for i in 0..<12 {
            let ts = "2026-11-14T08:00:\(String(format: "%02d", i * 5))Z"
            lines.append(Self.call(ts, "agent step \(i)"))
            lines.append(Self.call(ts, "agent step \(i)", key: "k-oncall"))
            if i < 10 { lines.append(Self.call(ts, "agent step \(i)", key: "k-bob")) }
        }
        try f.segment(lines)
        let outcome = try await f.outcome(asOf: "2026-11-14T08:10:00Z")
        let runaways = outcome.waste.findings.filter { $0.kind == .runaway }
        #expect(runaways.map(\.subject).sorted() == ["k-alice", "k-oncall"])
        let alice = try #require(runaways.first { $0.subject == "k-alice" })
        // Over the limit from the eleventh call: the two calls that made it so are the episode.
        #expect((alice.calls, alice.cost) == (2, try Money(parsing: "2.00")))
        #expect(alice.firstSeen == Timestamp.parse("2026-11-14T08:00:50Z") && alice.lastSeen == Timestamp.parse("2026-11-14T08:00:55Z"))
        #expect(alice.detail == "peak 12 requests/min, 12.00 USD in an hour")
        let entry = try #require(outcome.enforcement.list.entries.first)
        #expect(outcome.enforcement.list.entries.count == 1)
        #expect((entry.keyID, entry.kind) == ("k-alice", .runaway))
        #expect(entry.until == Timestamp.parse("2026-11-14T08:30:55Z"))
        #expect(outcome.enforcement.runawayOverrides.map(\.subject) == ["k-oncall"])
        // After the cool-down the key is back.
        let later = try await f.outcome(asOf: "2026-11-14T08:31:00Z")
        #expect(later.enforcement.list.entries.isEmpty)
    }
}
