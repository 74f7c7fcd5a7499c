import Foundation
import Report
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// `tally audit --as-of` away from now: a replay that ingests and says what it would do, changing nothing live unless
/// `--apply` (`docs/revocations.md`, "The audit's clock").
@Suite("Replays")
struct ReplayTests {
    typealias F = AuditFixture

    /// The files and tables a replay must leave as they were.
    struct LiveState: Equatable {
        var list: String
        var journal: [String]
        var alerts: Int
        var moves: Int
        var approvals: Int
        var reports: [String: String]

        init(_ f: F) throws {
            list = try String(contentsOfFile: f.root + "/var/revoked.tsv", encoding: .utf8)
            journal = try f.query("SELECT at || ' ' || kind || ' ' || subject || ' ' || detail FROM journal ORDER BY id")
            alerts = try (f.query("SELECT COUNT(*) FROM alerts") as [Int]).first ?? 0
            moves = try (f.query("SELECT COUNT(*) FROM pool_moves") as [Int]).first ?? 0
            approvals = try (f.query("SELECT COUNT(*) FROM realloc_approvals") as [Int]).first ?? 0
            var reports: [String: String] = [:]
            let folder = f.root + "/var/reports"
            for path in FileManager.default.subpaths(atPath: folder) ?? [] {
                var isFolder: ObjCBool = false
                guard FileManager.default.fileExists(atPath: folder + "/" + path, isDirectory: &isFolder), !isFolder.boolValue else {
                    continue
                }
                reports[path] = try String(contentsOfFile: folder + "/" + path, encoding: .utf8)
            }
            self.reports = reports
        }
    }

    @Test func aPastClockChangesNothingLiveWithoutApply() async throws {
        let f = try F(yaml: BudgetTests.yaml())
        defer { f.remove() }
        try f.segment([BudgetTests.call("2026-11-10T10:00:00Z")])
        // The live state: alice's day budget breached, her key revoked; a journal, an alert, the month's reports.
        _ = try await f.outcome(asOf: "2026-11-10T12:00:00Z")
        let before = try LiveState(f)
        #expect(before.list.contains("k-alice\tbudget"))
        #expect(!before.journal.isEmpty && before.alerts > 0 && before.reports["2026-11/report.html"] != nil)

        // An operator replays the morning before the breach: as of then alice's key is not revoked, and an earlier
        // audit would have lifted it for real. A new segment arrives meanwhile: it is ingested all the same.
        try f.segment([BudgetTests.call("2026-11-10T08:00:00Z", key: "k-dan")], stem: "20261110T080000Z-000002")
        let replay = try await Audit.run(config: f.config, options: Audit.Options(asOf: Timestamp.parse("2026-11-10T09:00:00Z")!))
        #expect(replay.replay)
        #expect(replay.ingest.totals.events == 1, "the new line is in the ledger")
        #expect(replay.enforcement.list.entries.isEmpty, "what it would list as of then")
        #expect(replay.reports.written.isEmpty)
        #expect(try LiveState(f) == before, "list, journal, alerts, pools and reports untouched")
        #expect(try (f.query("SELECT COUNT(*) FROM events") as [Int]) == [2])

        // With --out, the replay's reports go there only.
        let out = f.root + "/replay-reports"
        let written = try await Audit.run(
            config: f.config, options: Audit.Options(asOf: Timestamp.parse("2026-11-10T09:00:00Z")!, reportsOut: out))
        #expect(written.reports.written.map(\.folder) == [out + "/2026-11"])
        #expect(FileManager.default.fileExists(atPath: out + "/2026-11/report.html"))
        #expect(try LiveState(f) == before)

        // --apply acts as of then, as before (rebuilding a ledger, tests): the revocation is lifted.
        let applied = try await Audit.run(
            config: f.config, options: Audit.Options(asOf: Timestamp.parse("2026-11-10T09:00:00Z")!, apply: true))
        #expect(!applied.replay && applied.enforcement.rewritten)
        #expect(!(try LiveState(f).list.contains("k-alice\tbudget")))
    }

    @Test func theWallClockIsNotAReplay() {
        #expect(!Audit.Options().isReplay)
        #expect(!Audit.Options(asOf: Timestamp.now() - 30_000).isReplay, "a run that started a little while ago")
        #expect(Audit.Options(asOf: Timestamp.now() - 3_600_000).isReplay)
        #expect(Audit.Options(asOf: Timestamp.now() + 3_600_000).isReplay, "a clock ahead would lift revocations early")
        #expect(!Audit.Options(asOf: Timestamp.now() - 3_600_000, apply: true).isReplay)
    }
}
