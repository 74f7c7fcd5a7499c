import Foundation
import Report
import TallyConfig
import TallyCore
import TestSupport
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// Budgets in their calendar periods (Europe/Berlin), breaches, the priority bypass, expiry, and the revocation list.
@Suite("Budgets and the revocation list")
struct BudgetTests {
    typealias F = AuditFixture

    static func yaml(teamLimit: String = "1.00", aliceLimit: String = "0.50", aliceHard: Bool = true) -> String {
        """
        currency: USD
        providers:
          - {name: openai, kind: openai, base_url: "http://127.0.0.1:9", api_key_env: OPENAI_API_KEY}
        orgs:
          - {id: acme}
        teams:
          - {id: search, org: acme, budget: {limit: \(teamLimit), period: month}}
          - {id: support, org: acme}
        users:
          - {id: alice, team: search, budget: {limit: \(aliceLimit), period: day, hard: \(aliceHard)}}
          - {id: dan, team: support}
        keys:
          - {id: k-alice, sha256: 05ef46ef3bf75c23f8325bf380d2e87f16654cbe9c16237722c46ed7c96e2006, user: alice}
          - {id: k-alice-oncall, sha256: d5ad5254eededde7e0e4efd6d1dee0fb1b9d286f3d5a973315adad1b96bc8175, user: alice, priority: true}
          - {id: k-dan, sha256: 011a2419fe707d8ef9099b0cb644cd5aebaa09664115244fd23c48b41c0dba55, user: dan, expires: 2026-11-20T00:00:00Z}
        pricing:
          models:
            - {model: m1, input: 1.00, output: 0}
        collector:
          log_dir: log
          revocations: var/revoked.tsv
        audit:
          db: ledger/tally.sqlite
          timezone: Europe/Berlin
        """
    }

    /// 600,000 input tokens of m1 at 1.00 per million: 0.60.
    static func call(_ ts: String, key: String = "k-alice") -> String {
        F.line(ts: ts, key: key, usage: .init(input: 600_000, output: 0))
    }

    func list(_ f: F) throws -> [String] {
        let list = try #require(try RevocationList.read(path: f.root + "/var/revoked.tsv"))
        return list.entries.map { "\($0.keyID) \($0.kind.rawValue) \($0.until.map(Timestamp.format(milliseconds:)) ?? "-")" }
    }

    @Test func aDayBudgetBreachRevokesUntilLocalMidnightButNotThePriorityKey() async throws {
        let f = try F(yaml: Self.yaml())
        defer { f.remove() }
        try f.segment([Self.call("2026-11-10T10:00:00Z")])
        let outcome = try await f.outcome(asOf: "2026-11-10T12:00:00Z")
        // 0.60 of alice's 0.50 day budget: 120%. Berlin's 2026-11-11 starts at 23:00 UTC.
        #expect(try list(f) == ["k-alice budget 2026-11-10T23:00:00.000Z"])
        let entry = try #require(outcome.enforcement.list.entries.first)
        #expect(entry.message == "user alice spent 120% (0.60) of its 0.50 USD day budget for 2026-11-10")
        #expect(outcome.enforcement.overrides.map(\.key) == ["k-alice-oncall"])
        #expect(outcome.enforcement.rewritten)

        // The same audit again changes nothing, and leaves the file alone.
        #expect(try await f.outcome(asOf: "2026-11-10T12:00:00Z").enforcement.rewritten == false)
        // A new day lifts it.
        #expect(try await f.outcome(asOf: "2026-11-11T08:00:00Z").enforcement.list.entries.isEmpty)
        #expect(try list(f).isEmpty)
    }

    /// A key calling only a model without a price still spends: each call counts toward its budgets at the
    /// conservative estimate, and a hard budget breached by estimates alone revokes the key, saying so.
    @Test func unpricedCallsAloneBreachAHardBudget() async throws {
        let f = try F(
            yaml: Self.yaml(teamLimit: "100.00").replacingOccurrences(
                of: "pricing:\n", with: "pricing:\n  unpriced_estimate: {input: 2.00, output: 8.00}\n"))
        defer { f.remove() }
        // 600,000 input × 2.00 per million = 1.20 estimated: 240% of alice's 0.50 day budget.
        try f.segment([
            F.line(ts: "2026-11-10T10:00:00Z", key: "k-alice", model: "model-nobody-prices", usage: .init(input: 600_000, output: 0))
        ])
        let outcome = try await f.outcome(asOf: "2026-11-10T12:00:00Z")
        #expect(try list(f) == ["k-alice budget 2026-11-10T23:00:00.000Z"])
        let entry = try #require(outcome.enforcement.list.entries.first)
        #expect(
            entry.message
                == "user alice spent 240% (1.20, 1.20 of it estimated for unpriced calls) of its 0.50 USD day budget for 2026-11-10")
        let alice = try #require(outcome.enforcement.statuses.first { $0.id == "alice" })
        #expect(alice.estimated == (try Money(parsing: "1.20")) && alice.spend == alice.estimated)
        // The spend reports still have no cost for it: it is listed as unpriced, and estimated only in budgets.
        #expect(try f.breakdown().total.cost == .zero)
        let estimates: [Int64] = try f.query("SELECT cost_estimate FROM events")
        #expect(estimates == [1_200_000_000_000])

        // Without a configured estimate, the highest rates among the provider's prices: at least as much.
        let g = try F(yaml: Self.yaml(teamLimit: "100000.00"))
        defer { g.remove() }
        try g.segment([
            F.line(ts: "2026-11-10T10:00:00Z", key: "k-alice", model: "model-nobody-prices", usage: .init(input: 600_000, output: 0))
        ])
        let fallback = try await g.outcome(asOf: "2026-11-10T12:00:00Z")
        #expect(try list(g) == ["k-alice budget 2026-11-10T23:00:00.000Z"])
        #expect(try #require(fallback.enforcement.statuses.first { $0.id == "alice" }).estimated > (try Money(parsing: "1.20")))
    }

    @Test func periodsFollowTheLocalCalendarAndTheAuditClock() async throws {
        let f = try F(yaml: Self.yaml(teamLimit: "100.00"))
        defer { f.remove() }
        // 23:30 UTC on the 10th is 00:30 on the 11th in Berlin.
        try f.segment([Self.call("2026-11-10T23:30:00Z")])
        // Before the call happened (as of 22:59 UTC), nothing is spent.
        let before = try await f.outcome(asOf: "2026-11-10T22:59:00Z")
        #expect(before.enforcement.statuses.first { $0.scope == .user }?.spend == .zero)
        #expect(before.enforcement.list.entries.isEmpty)
        // After it, the Berlin day 2026-11-11 holds it, and the revocation ends at its end.
        let after = try await f.outcome(asOf: "2026-11-10T23:45:00Z")
        let alice = try #require(after.enforcement.statuses.first { $0.scope == .user })
        let sixty = try Money(parsing: "0.60")
        #expect(alice.periodLabel == "2026-11-11" && alice.spend == sixty)
        #expect(try list(f) == ["k-alice budget 2026-11-11T23:00:00.000Z"])
    }

    @Test func aTeamMonthBreachRevokesItsKeysAndARaisedBudgetLiftsIt() async throws {
        let f = try F(yaml: Self.yaml(aliceLimit: "10.00"))
        defer { f.remove() }
        try f.segment([Self.call("2026-11-03T10:00:00Z"), Self.call("2026-11-12T10:00:00Z")])
        // 1.20 of the team's 1.00 month budget; December starts at 23:00 UTC on 30 November in Berlin.
        _ = try await f.outcome(asOf: "2026-11-12T12:00:00Z")
        #expect(try list(f) == ["k-alice budget 2026-11-30T23:00:00.000Z"])

        let raised = try f.reconfigured(Self.yaml(teamLimit: "5.00", aliceLimit: "10.00"))
        let after = try await raised.outcome(asOf: "2026-11-12T12:00:00Z")
        #expect(after.enforcement.list.entries.isEmpty && after.enforcement.rewritten)
    }

    @Test func softBudgetsOnlyReportAndExpiredKeysAreRevokedForGood() async throws {
        let f = try F(yaml: Self.yaml(teamLimit: "100.00", aliceHard: false))
        defer { f.remove() }
        try f.segment([Self.call("2026-11-10T10:00:00Z")])
        let outcome = try await f.outcome(asOf: "2026-11-21T12:00:00Z")
        #expect(try list(f) == ["k-dan expired -"])
        #expect(outcome.enforcement.statuses.contains { $0.scope == .user && !$0.isBreached })
    }

    @Test func entriesPeopleWroteAreKept() async throws {
        let f = try F(yaml: Self.yaml(teamLimit: "100.00", aliceLimit: "100.00"))
        defer { f.remove() }
        try f.segment([Self.call("2026-11-10T10:00:00Z")])
        try RevocationList(entries: [
            .init(keyID: "k-dan", reason: "manual: leaked in a public repo", until: nil),
            .init(keyID: "k-alice", reason: "budget: an old breach the audit no longer sees", until: nil),
        ]).write(to: f.root + "/var/revoked.tsv")
        _ = try await f.outcome(asOf: "2026-11-10T12:00:00Z")
        #expect(try list(f) == ["k-dan manual -"])
    }

    /// A security tool's entry for a key that had decisions before (here a revoke and a restore) is kept by later
    /// audits: only `tally keys restore` lifts it, and the journal says who did.
    @Test func aToolsEntryOutlivesOlderDecisionsUntilARestore() async throws {
        let f = try F(yaml: Self.yaml(teamLimit: "100.00", aliceLimit: "100.00"))
        defer { f.remove() }
        try f.segment([Self.call("2026-11-10T10:00:00Z")])
        let at = Timestamp.parse("2026-11-10T11:00:00Z")!
        for action in [KeyDecision.Action.revoke, .restore] {
            _ = try KeyDecisions.record(
                KeyDecision(key: "k-alice", action: action, reason: "drill", until: nil, at: at, by: "ops"), config: f.config)
        }
        try RevocationList(entries: [.init(keyID: "k-alice", reason: "manual: leaked, found by the secret scanner", until: nil)])
            .write(to: f.root + "/var/revoked.tsv")
        _ = try await f.outcome(asOf: "2026-11-10T12:00:00Z")
        _ = try await f.outcome(asOf: "2026-11-10T13:00:00Z")
        #expect(try list(f) == ["k-alice manual -"], "the scanner's entry stays")

        _ = try KeyDecisions.record(
            KeyDecision(key: "k-alice", action: .restore, reason: "rotated", until: nil, at: at + 7_200_000 + 600_000, by: "sec-oncall"),
            config: f.config)
        #expect(try list(f).isEmpty)
        let journal: [String] = try f.query("SELECT kind || ' ' || detail FROM journal WHERE subject = 'key k-alice' ORDER BY id")
        #expect(journal.contains { $0.hasPrefix("decision restore by sec-oncall: rotated") })
    }

    /// The emergency path always works: a list on disk that cannot be read is rebuilt from the ledger and journal (by
    /// the audit and by `tally keys revoke`), and `tally keys` waits for an audit holding the ledger.
    @Test func aCorruptListIsRebuiltAndKeysWaitForTheLock() async throws {
        let f = try F(yaml: Self.yaml(teamLimit: "100.00", aliceLimit: "100.00"))
        defer { f.remove() }
        try f.segment([Self.call("2026-11-10T10:00:00Z")])
        try RevocationList(entries: [.init(keyID: "k-dan", reason: "manual: leaked, found by the secret scanner", until: nil)])
            .write(to: f.root + "/var/revoked.tsv")
        _ = try await f.outcome(asOf: "2026-11-10T12:00:00Z")
        #expect(try list(f) == ["k-dan manual -"])

        // A hand edit breaks the checksum: the audit rebuilds the list instead of failing every run.
        var text = try String(contentsOfFile: f.root + "/var/revoked.tsv", encoding: .utf8)
        text += "k-alice\tmanual: typed by hand\t-\n"
        try text.write(toFile: f.root + "/var/revoked.tsv", atomically: true, encoding: .utf8)
        let rebuilt = try await f.outcome(asOf: "2026-11-10T13:00:00Z")
        #expect(rebuilt.enforcement.rebuilt != nil)
        #expect(try list(f) == ["k-dan manual -"], "what the journal recorded, not the forged line")
        let rows: [String] = try f.query("SELECT detail FROM journal WHERE kind = 'list'")
        #expect(rows.count == 1 && rows[0].hasPrefix("rebuilt from the ledger"))

        // `tally keys revoke` gets through a corrupt file too.
        try text.write(toFile: f.root + "/var/revoked.tsv", atomically: true, encoding: .utf8)
        let revoked = try KeyDecisions.record(
            KeyDecision(
                key: "k-alice", action: .revoke, reason: "leaked", until: nil, at: Timestamp.parse("2026-11-10T13:05:00Z")!, by: "ops"),
            config: f.config)
        #expect(revoked.rebuilt != nil)
        #expect(try list(f) == ["k-alice manual -", "k-dan manual -"])

        // An audit holds the ledger: without waiting, refused at once; with a wait, through once it is released.
        let ledgerPath = f.config.resolve(f.config.audit.db)
        // Only the releaser below touches it after this point.
        nonisolated(unsafe) let held = try AuditLock(ledgerPath: ledgerPath, purpose: "tally audit")
        let restore = KeyDecision(
            key: "k-alice", action: .restore, reason: "rotated", until: nil, at: Timestamp.parse("2026-11-10T13:10:00Z")!, by: "ops")
        #expect(throws: AuditError.self) { try KeyDecisions.record(restore, config: f.config, wait: .zero) }
        // Both the release and the waiting call run on Dispatch threads: a blocked call on the cooperative pool (two
        // threads on a 2-core machine) could starve a releaser that needed the pool, and the wait would time out.
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(500)) { held.release() }
        let config = f.config
        let waited = try await offPool {
            let started = ContinuousClock.now
            _ = try KeyDecisions.record(restore, config: config, wait: .seconds(10))
            return ContinuousClock.now - started
        }
        #expect(waited >= .milliseconds(400))
        #expect(try list(f) == ["k-dan manual -"])
    }

    @Test func aPersonRevokesAndRestoresAKey() async throws {
        let f = try F(yaml: Self.yaml(teamLimit: "100.00", aliceLimit: "100.00"))
        defer { f.remove() }
        try f.segment([Self.call("2026-11-10T10:00:00Z")])
        _ = try await f.outcome(asOf: "2026-11-10T12:00:00Z")
        let at = Timestamp.parse("2026-11-10T12:05:00Z")!

        let revoked = try KeyDecisions.record(
            KeyDecision(key: "k-alice", action: .revoke, reason: "leaked in a chat", until: nil, at: at, by: "ops"),
            config: f.config)
        #expect(try list(f) == ["k-alice manual -"])
        #expect(revoked.list.entries.first?.message == "leaked in a chat (by ops)")
        // The next audit keeps what the person decided.
        _ = try await f.outcome(asOf: "2026-11-10T12:10:00Z")
        #expect(try list(f) == ["k-alice manual -"])

        _ = try KeyDecisions.record(
            KeyDecision(key: "k-alice", action: .restore, reason: "rotated", until: nil, at: at + 600_000, by: "ops"),
            config: f.config)
        #expect(try list(f).isEmpty)
        _ = try await f.outcome(asOf: "2026-11-10T12:20:00Z")
        #expect(try list(f).isEmpty)

        do {
            _ = try KeyDecisions.record(
                KeyDecision(key: "k-nobody", action: .revoke, reason: "x", until: nil, at: at, by: "ops"), config: f.config)
            Issue.record("a key the config does not list was revoked")
        } catch {
            #expect(error.code == .usage)
        }
    }

    @Test func eachThresholdCrossingIsRecordedOnceWithTheCallThatCrossedIt() async throws {
        let f = try F(yaml: Self.yaml(aliceLimit: "10.00"))
        defer { f.remove() }
        // The team's 1.00 month budget: 0.60 at 09:00 crosses 50%; 1.20 at 10:00 crosses 80%, 90% and 100%.
        try f.segment([Self.call("2026-11-03T09:00:00Z"), Self.call("2026-11-03T10:00:00Z")])
        let first = try await f.outcome(asOf: "2026-11-12T12:00:00Z")
        let described = first.alerts.map {
            "\($0.scope.rawValue) \($0.id) \($0.threshold.percent())% \(Timestamp.format(milliseconds: $0.crossedAt)) \($0.spend.exact)"
        }
        #expect(
            described == [
                "team search 50% 2026-11-03T09:00:00.000Z 0.60",
                "team search 80% 2026-11-03T10:00:00.000Z 1.20",
                "team search 90% 2026-11-03T10:00:00.000Z 1.20",
                "team search 100% 2026-11-03T10:00:00.000Z 1.20",
            ])
        #expect(
            Alerts.describe(first.alerts[0], currency: "USD")
                == "team search crossed 50% of its 1.00 USD month budget for 2026-11 at 2026-11-03T09:00:00.000Z (0.60 spent)")
        // Once per budget and period.
        #expect(try await f.outcome(asOf: "2026-11-12T13:00:00Z").alerts.isEmpty)
    }
}
