import Foundation
import Report
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// What each audit leaves in `audit.reports_dir`: the month in progress, final reports for closed months, late calls.
@Suite("report publishing")
struct ReportPublishingTests {
    static let yaml = AuditFixture.yaml
        .replacingOccurrences(of: "  - {id: search, org: acme}", with: "  - {id: search, org: acme, budget: {limit: 1.00, period: month}}")
        .replacingOccurrences(of: "  timezone: UTC", with: "  timezone: Europe/Berlin\n  reports_dir: out/reports")

    /// 1000 input tokens of m1 cost 0.001 before 15 November; 400,000 cost 0.40.
    static func call(_ ts: String, key: String = "k-alice", input: Int64 = 400_000) -> String {
        AuditFixture.line(ts: ts, key: key, usage: UsageEvent.Usage(input: input, output: 0))
    }

    func read(_ f: AuditFixture, _ path: String) throws -> String {
        try String(contentsOfFile: f.root + "/out/reports/" + path, encoding: .utf8)
    }

    func costSum(_ csv: String) throws -> Money {
        let rows = csv.split(separator: "\r\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        return try rows.reduce(Money.zero) { $0 + ($1[14].isEmpty ? .zero : try Money(parsing: $1[14])) }
    }

    /// A price that appears after a month closed prices its calls: the next audit re-prices exactly those calls,
    /// journals it, and writes the month's final report again marked corrected, with the difference. A later
    /// correction with `from:` re-prices only the calls from then on.
    @Test func aPriceAddedLaterRepricesEarlierCallsAndCorrectsTheClosedMonth() async throws {
        let yaml = AuditFixture.yaml.replacingOccurrences(of: "  timezone: UTC", with: "  timezone: UTC\n  reports_dir: out/reports")
        let f = try AuditFixture(yaml: yaml)
        defer { f.remove() }
        func house(_ ts: String) -> String {
            AuditFixture.line(ts: ts, key: "k-dan", model: "house-model-7", usage: UsageEvent.Usage(input: 1_000_000, output: 0))
        }
        try f.segment(
            [house("2026-10-10T10:00:00Z"), house("2026-10-20T10:00:00Z"), Self.call("2026-10-21T10:00:00Z")],
            stem: "20261010T000000Z-000001")
        let first = try await f.outcome(asOf: "2026-11-05T12:00:00Z")
        #expect(first.reports.written.map(\.period) == ["2026-10", "2026-11"])
        #expect(try read(f, "2026-10/unpriced.csv").contains("openai,house-model-7,2,"))
        #expect(try costSum(read(f, "2026-10/attribution.csv")) == (try Money(parsing: "0.4")))
        #expect(first.repriced.isEmpty)

        // The price arrives: 2.00 per million, so 2.00 for each call.
        let priced = try f.reconfigured(
            yaml.replacingOccurrences(
                of: "    - {model: m2, input: 0.15, output: 0.60}",
                with: "    - {model: m2, input: 0.15, output: 0.60}\n    - {model: house-model-7, input: 2.00, output: 8.00}"))
        let second = try await priced.outcome(asOf: "2026-11-06T12:00:00Z")
        #expect(
            second.repriced == [
                "model house-model-7 via openai: 2 calls re-priced (2 of them unpriced before): 0.00 → 4.00 USD, by config price for house-model-7"
            ])
        #expect(second.reports.written.map(\.period) == ["2026-10", "2026-11"])
        #expect(try costSum(read(f, "2026-10/attribution.csv")) == (try Money(parsing: "4.4")))
        #expect(try read(f, "2026-10/unpriced.csv").split(separator: "\r\n").count == 1, "nothing unpriced any more")
        #expect(try read(f, "2026-10/manifest.json").contains(#""corrected":{"calls":2,"change":"4.00","at":"2026-11-06T12:00:00Z"}"#))
        #expect(try read(f, "2026-10/report.html").contains("Corrected: 2 calls of this period were priced again"))
        let journal: [String] = try f.query("SELECT subject || ': ' || detail FROM journal WHERE kind = 'reprice'")
        #expect(journal.count == 1)
        let costs: [Int64] = try f.query(
            "SELECT cost FROM events e JOIN dims m ON m.id = e.model WHERE m.value = 'house-model-7' ORDER BY ts")
        #expect(costs == [2_000_000_000_000, 2_000_000_000_000])

        // Nothing changed: nothing is re-priced, the final report is left alone.
        #expect(try await priced.outcome(asOf: "2026-11-06T13:00:00Z").repriced.isEmpty)

        // A correction from 15 October: 3.00 per million for the second call only.
        let corrected = try f.reconfigured(
            yaml.replacingOccurrences(
                of: "    - {model: m2, input: 0.15, output: 0.60}",
                with: "    - {model: m2, input: 0.15, output: 0.60}\n    - {model: house-model-7, input: 2.00, output: 8.00}\n"
                    + "    - {model: house-model-7, input: 3.00, output: 8.00, from: 2026-10-15}"))
        let third = try await corrected.outcome(asOf: "2026-11-07T12:00:00Z")
        #expect(third.repriced.count == 1 && third.repriced[0].contains("1 calls re-priced (0 of them unpriced before): 2.00 → 3.00 USD"))
        #expect(try costSum(read(f, "2026-10/attribution.csv")) == (try Money(parsing: "5.4")))
        #expect(try read(f, "2026-10/manifest.json").contains(#""corrected":{"calls":3,"change":"5.00","at":"2026-11-07T12:00:00Z"}"#))
        #expect(try read(f, "2026-10/manifest.json").contains(#""late":null"#), "a correction is not a late call")
    }

    @Test func closedMonthsGetOneFinalReportAndLateCallsReopenIt() async throws {
        let f = try AuditFixture(yaml: Self.yaml)
        defer { f.remove() }
        // 31 October 23:30 UTC is already 1 November in Berlin.
        try f.segment([Self.call("2026-10-20T10:00:00Z"), Self.call("2026-10-31T23:30:00Z", input: 1000)], stem: "20261020T000000Z-000001")
        try f.segment(
            [Self.call("2026-11-05T10:00:00Z"), Self.call("2026-11-06T10:00:00Z"), Self.call("2026-11-07T10:00:00Z")],
            stem: "20261105T000000Z-000001")
        let first = try await f.outcome(asOf: "2026-11-10T12:00:00Z")
        #expect(first.reports.written.map(\.period) == ["2026-10", "2026-11"])
        #expect(first.reports.written.map(\.isFinal) == [true, false])

        // October holds one call of 0.40; November the Berlin-midnight call and three more.
        #expect(try costSum(read(f, "2026-10/attribution.csv")) == (try Money(parsing: "0.4")))
        #expect(try costSum(read(f, "2026-11/attribution.csv")) == (try Money(parsing: "1.201")))
        #expect(try read(f, "2026-10/manifest.json").contains(#""final":true"#))
        #expect(try read(f, "2026-11/manifest.json").contains(#""final":false"#))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: f.root + "/out/reports/latest") == "2026-11")
        #expect(try read(f, "latest/report.html").contains("<span data-exact-total>1.201000</span>"))

        // The team's 1.00 budget was crossed by the third November call: an alert and a breach with k-alice revoked.
        let breaches = try read(f, "2026-11/breaches.csv")
        #expect(breaches.contains("2026-11-07T10:00:00Z,team,search,month,2026-11,true,1.201000,1.000000,USD,revoked,k-alice,"))
        #expect(try read(f, "2026-11/alerts.csv").contains("2026-11-07T10:00:00Z,team,search,month,2026-11,1,"))
        #expect(try read(f, "2026-11/budgets.csv").contains("team,search,month,2026-11,true,1.000000,1.000000,1.201000,1.2010,"))
        #expect(try read(f, "2026-11/revocations.csv").contains(",k-alice,in_force,budget: team search spent 120%"))

        // A re-run leaves the final report alone.
        let octoberReport = f.root + "/out/reports/2026-10/report.html"
        let written = try FileManager.default.attributesOfItem(atPath: octoberReport)[.systemFileNumber] as? Int
        let second = try await f.outcome(asOf: "2026-11-10T12:05:00Z")
        #expect(second.reports.written.map(\.period) == ["2026-11"])
        #expect(try FileManager.default.attributesOfItem(atPath: octoberReport)[.systemFileNumber] as? Int == written)

        // A late October call: October is written again, still final, and says what arrived late.
        try f.segment([Self.call("2026-10-25T10:00:00Z", key: "k-dan", input: 100_000)], stem: "20261025T000000Z-000009")
        let third = try await f.outcome(asOf: "2026-11-11T12:00:00Z")
        #expect(third.reports.written.map(\.period) == ["2026-10", "2026-11"])
        let late = try #require(third.reports.written[0].late)
        #expect(late.requests == 1)
        #expect(late.cost == (try Money(parsing: "0.10")))
        #expect(try costSum(read(f, "2026-10/attribution.csv")) == (try Money(parsing: "0.50")))
        let manifest = try read(f, "2026-10/manifest.json")
        #expect(manifest.contains(#""final":true"#) && manifest.contains(#""late":{"requests":1,"cost":"0.100000""#))
        #expect(try read(f, "2026-10/report.html").contains("1 late calls"))

        // `tally report` writes the same files from the ledger alone.
        let ledger = try Ledger(path: f.ledgerPath, readOnly: true)
        let again = try PeriodReportBuilder.build(
            ledger: ledger, config: f.config, period: try Period(parsing: "2026-11"),
            asOf: Timestamp.parse("2026-11-11T12:00:00Z")!)
        #expect(AttributionCSV().render(again) == (try read(f, "2026-11/attribution.csv")))
        #expect(FocusCSV().render(again) == (try read(f, "2026-11/focus.csv")))
    }
}
