import Foundation
import GRDB
import Report
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// Away releases, pool draws, proposals and approvals, and the hash-chained journal that records them.
@Suite("Reallocation and the journal")
struct ReallocationTests {
    typealias F = AuditFixture

    static func yaml(autoApprove: Bool = false) -> String {
        """
        currency: USD
        providers:
          - {name: openai, kind: openai, base_url: "http://127.0.0.1:9", api_key_env: OPENAI_API_KEY}
        orgs:
          - {id: acme}
        teams:
          - {id: search, org: acme, pool: true}
          - {id: support, org: acme}
        users:
          - {id: alice, team: search, budget: {limit: 300.00, period: month}, away: [{from: 2026-11-11, to: 2026-11-20}]}
          - {id: bob, team: search, budget: {limit: 300.00, period: month}}
          - {id: carol, team: search, budget: {limit: 300.00, period: month}}
          - {id: dan, team: support, budget: {limit: 100.00, period: month}}
          - {id: erin, team: support, budget: {limit: 100.00, period: month}}
        keys:
          - {id: k-alice, sha256: \(String(repeating: "a", count: 64)), user: alice}
          - {id: k-bob, sha256: \(String(repeating: "b", count: 64)), user: bob}
          - {id: k-carol, sha256: \(String(repeating: "c", count: 64)), user: carol}
          - {id: k-dan, sha256: \(String(repeating: "d", count: 64)), user: dan}
          - {id: k-erin, sha256: \(String(repeating: "e", count: 64)), user: erin}
        pricing:
          models:
            - {model: m1, input: 1.00, output: 0}
        collector:
          log_dir: log
          revocations: var/revoked.tsv
        audit:
          db: ledger/tally.sqlite
          timezone: UTC
          auto_approve: \(autoApprove)
        """
    }

    /// Spend of `dollars` on m1 by `key` at `ts`.
    static func spend(_ key: String, _ dollars: Int64, at ts: String = "2026-11-05T10:00:00Z") -> String {
        F.line(ts: ts, key: key, usage: .init(input: dollars * 1_000_000, output: 0))
    }

    static let lines = [
        spend("k-alice", 50), spend("k-bob", 350), spend("k-carol", 100), spend("k-dan", 150), spend("k-erin", 10),
    ]
    /// Half of November has passed.
    static let asOf = "2026-11-16T00:00:00Z"

    func status(_ outcome: Audit.Outcome, _ user: String) throws -> BudgetStatus {
        try #require(outcome.enforcement.statuses.first { $0.scope == .user && $0.id == user })
    }

    @Test func awayDaysFillThePoolThatCoversAnOverrunAndProposalsMoveWhatWillNotBeUsed() async throws {
        let f = try F(yaml: Self.yaml())
        defer { f.remove() }
        try f.segment(Self.lines)
        let outcome = try await f.outcome(asOf: Self.asOf)
        let money = { (text: String) in try! Money(parsing: text) }

        // Alice is away 10 of November's 30 days: a third of 300.00 goes to the search pool.
        let alice = try status(outcome, "alice")
        #expect(alice.released == money("100.00") && alice.limit == money("200.00"))
        // Bob is 50.00 over: the pool covers it, so none of his keys is revoked.
        let bob = try status(outcome, "bob")
        #expect(bob.drawn == money("50.00") && bob.limit == money("350.00") && !bob.isBreached)
        // Dan's team has no pool: his key is revoked.
        #expect(outcome.enforcement.list.entries.map(\.keyID) == ["k-dan"])
        let moves = outcome.enforcement.reallocation.moves.map {
            "\($0.user) \($0.kind.rawValue) \($0.days) \($0.amount.formatted(places: 2))"
        }
        #expect(moves == ["alice release 10 100.00", "bob draw 0 50.00"])

        // At half time, bob is on pace for 700.00 of 350.00; alice for 100.00 of 200.00 and carol for 200.00 of 300.00.
        let proposals = outcome.enforcement.reallocation.proposals.map { "\($0.id) \($0.amount.formatted(places: 2))" }
        #expect(proposals == ["2026-11:alice:bob 100.00", "2026-11:carol:bob 100.00", "2026-11:erin:dan 80.00"])
        let ledger = try Ledger(path: f.ledgerPath, readOnly: true)
        #expect(try Reallocation.proposals(ledger: ledger).map(\.id) == ["2026-11:alice:bob", "2026-11:carol:bob", "2026-11:erin:dan"])

        // Approving erin's spare budget for dan lifts dan's revocation at once, and is recorded with who and when.
        let (approval, result) = try Reallocation.approve(
            id: "2026-11:erin:dan", config: f.config, by: "finance-lead",
            at: Timestamp.parse(Self.asOf)!)
        #expect(approval.amount == money("80.00") && approval.by == "finance-lead")
        #expect(result.list.entries.isEmpty)
        let dan = try #require(result.statuses.first { $0.id == "dan" })
        #expect(dan.limit == money("180.00") && dan.movedIn == money("80.00"))
        #expect(throws: AuditError.self) { try Reallocation.approve(id: "2026-11:erin:dan", config: f.config, by: "x", at: 0) }

        // The next audit keeps the approval.
        let again = try await f.outcome(asOf: Self.asOf)
        #expect(again.enforcement.list.entries.isEmpty)
        #expect(try status(again, "erin").limit == money("20.00"))
    }

    @Test func autoApproveAppliesTheProposalsInTheSameRun() async throws {
        let f = try F(yaml: Self.yaml(autoApprove: true))
        defer { f.remove() }
        try f.segment(Self.lines)
        let outcome = try await f.outcome(asOf: Self.asOf)
        #expect(
            outcome.enforcement.reallocation.approved.map(\.proposal) == ["2026-11:alice:bob", "2026-11:carol:bob", "2026-11:erin:dan"])
        #expect(outcome.enforcement.reallocation.approved.allSatisfy { $0.by == "tally audit (auto_approve)" })
        #expect(outcome.enforcement.list.entries.isEmpty)
        #expect(outcome.enforcement.reallocation.proposals.isEmpty)
    }

    @Test func theJournalChainsEveryChangeAndVerifyFindsAlteredAndRemovedRows() async throws {
        let f = try F(yaml: Self.yaml())
        defer { f.remove() }
        try f.segment(Self.lines)
        _ = try await f.outcome(asOf: Self.asOf)
        _ = try Reallocation.approve(id: "2026-11:erin:dan", config: f.config, by: "finance-lead", at: Timestamp.parse(Self.asOf)!)
        // A raised budget is journalled on the next run.
        let raised = try f.reconfigured(
            Self.yaml().replacingOccurrences(
                of: "{id: carol, team: search, budget: {limit: 300.00",
                with: "{id: carol, team: search, budget: {limit: 400.00"))
        _ = try await raised.outcome(asOf: Self.asOf)

        let kinds: [String] = try f.query("SELECT kind || ' ' || subject FROM journal ORDER BY id")
        #expect(kinds.filter { $0.hasPrefix("budget ") }.count == 6)  // five budgets, then carol's raise
        #expect(kinds.contains("release user alice") && kinds.contains("draw user bob"))
        #expect(kinds.contains("revoke key k-dan") && kinds.contains("approval user dan") && kinds.contains("restore key k-dan"))
        let carol: [String] = try f.query("SELECT detail FROM journal WHERE subject = 'user carol' ORDER BY id")
        #expect(carol == ["300.00 USD a month, hard", "400.00 USD a month, hard"])

        let ledger = try Ledger(path: f.ledgerPath, readOnly: true)
        let whole = try Journal.verify(ledger: ledger)
        #expect(whole.problems.isEmpty && whole.rows == kinds.count)

        let queue = try DatabaseQueue(path: f.ledgerPath)
        let row = try #require((try f.query("SELECT MIN(id) FROM journal WHERE subject = 'user carol'") as [Int]).first)
        try await queue.write { db in
            try db.execute(sql: "UPDATE journal SET detail = '900.00 USD a month, hard' WHERE id = ?", arguments: [row])
        }
        let altered = try Journal.verify(ledger: ledger)
        #expect(altered.problems.first?.hasPrefix("journal row \(row) (budget user carol)") == true)
        #expect(altered.problems.first?.hasSuffix("was altered: its hash does not match its content") == true)

        try await queue.write { db in
            try db.execute(sql: "UPDATE journal SET detail = ? WHERE id = ?", arguments: ["300.00 USD a month, hard", row])
        }
        #expect(try Journal.verify(ledger: ledger).problems.isEmpty)
        try await queue.write { db in try db.execute(sql: "DELETE FROM journal WHERE id = (SELECT MAX(id) FROM journal)") }
        #expect(try Journal.verify(ledger: ledger).problems.first?.contains("rows were removed from the end") == true)
        try await queue.write { db in try db.execute(sql: "DELETE FROM journal WHERE id = 3") }
        #expect(try Journal.verify(ledger: ledger).problems.contains { $0.contains("rows 3...3 are missing") })
    }
}
