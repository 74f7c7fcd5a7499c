import Foundation
import Report
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// Calls with a served tier, long context, one-hour cache writes and web searches, through a whole audit: what the
/// ledger keeps of each, and what the month's report lists.
@Suite("Pricing dimensions through the audit")
struct PricingIngestTests {
    static let yaml = AuditFixture.yaml.replacingOccurrences(
        of: "    - {model: m2, input: 0.15, output: 0.60}\n",
        with: """
                - {model: m2, input: 0.15, output: 0.60}
                - model: tiered
                  input: 1.00
                  output: 4.00
                  cache_write: 1.25
                  tiers: {priority: {input: 2.00, output: 8.00}}
                  long_context: [{above: 100000, input: 3.00, output: 6.00}]

            """)

    static func line(_ n: Int, tier: String?, usage: UsageEvent.Usage) -> String {
        let ts = Timestamp.parse("2026-11-10T10:00:0\(n)Z")!
        return UsageEvent(
            id: EventID.make(milliseconds: ts), timestamp: ts, collector: "c1", key: "k-alice", provider: "openai", endpoint: .responses,
            model: "tiered", status: 200, outcome: .ok, stream: false, usage: usage, serviceTier: tier
        ).jsonLine
    }

    @Test func eachCallIsPricedByWhatItWasServedAndGapsAreListed() async throws {
        #expect(Self.yaml.contains("tiered"))
        let f = try AuditFixture(yaml: Self.yaml)
        defer { f.remove() }
        try f.segment([
            // priority: 1,000 × 2e-6 + 100 × 8e-6 = 0.0028
            Self.line(1, tier: "priority", usage: .init(input: 1_000, output: 100)),
            // scale has no price: standard, 1,000 × 1e-6 + 100 × 4e-6 = 0.0014, listed
            Self.line(2, tier: "scale", usage: .init(input: 1_000, output: 100)),
            // long context: 200,000 × 3e-6 + 100 × 6e-6 = 0.6006
            Self.line(3, tier: "default", usage: .init(input: 200_000, output: 100)),
            // one-hour writes without a price: 400 × 1e-6 + 600 × 1.25e-6 = 0.00115, listed
            Self.line(4, tier: nil, usage: .init(input: 1_000, cacheWrite: 600, cacheWrite1h: 500)),
            // web searches without a price: 1,000 × 1e-6 = 0.001, the 3 searches listed
            Self.line(5, tier: nil, usage: .init(input: 1_000, webSearchRequests: 3)),
        ])
        let result = try await f.audit()
        #expect(result.totals.events == 5 && result.totals.unpriced == 0)

        let rows: [String] = try f.query(
            """
            SELECT COALESCE(t.value, '-') || ' ' || e.cost || ' ' || e.price_notes || ' ' || COALESCE(e.cache_write_1h, '-') || ' '
                || COALESCE(e.web_search_requests, '-')
            FROM events e LEFT JOIN dims t ON t.id = e.service_tier ORDER BY e.ts
            """)
        #expect(
            rows == [
                "priority 2800000000 0 - -", "scale 1400000000 2 - -", "default 600600000000 1 - -", "- 1150000000 4 500 -",
                "- 1000000000 8 - 3",
            ])
        // The price row says what it priced with beyond the plain rates.
        let dimensions: [String] = try f.query("SELECT dimensions FROM prices WHERE model = 'tiered'")
        #expect(
            dimensions == [
                #"{"long_context":[{"above":100000,"input":"3.000000","output":"6.000000"}],"tiers":{"priority":{"input":"2.000000","output":"8.000000"}}}"#
            ])

        let ledger = try Ledger(path: f.ledgerPath, readOnly: true)
        let report = try PeriodReportBuilder.build(
            ledger: ledger, config: f.config, period: try Period(parsing: "2026-11"), asOf: Timestamp.parse("2026-11-30T00:00:00Z")!)
        #expect(report.total == (try Money(parsing: "0.60695")))
        #expect(
            report.priceGaps == [
                PriceGapRow(provider: "openai", model: "tiered", serviceTier: nil, gap: .cacheWrite1h, requests: 1, quantity: 500),
                PriceGapRow(provider: "openai", model: "tiered", serviceTier: nil, gap: .webSearch, requests: 1, quantity: 3),
                PriceGapRow(provider: "openai", model: "tiered", serviceTier: "scale", gap: .serviceTier, requests: 1, quantity: 1_100),
            ])
        // Every call had a tier or a note, so each is in one split of its row.
        let row = try #require(report.attribution.first { $0.model == "tiered" })
        #expect(row.splits.reduce(Int64(0)) { $0 + $1.requests } == 5)
        #expect(row.splits.reduce(Money.zero) { $0 + $1.cost } == row.cost)
        let csv = PriceGapsCSV().render(report)
        #expect(csv.contains("openai,tiered,scale,service_tier,1,1100,tokens,standard tier rates"))
    }

    /// Calls the endpoint policy let through unmetered are counted, not priced, and listed by key in the month's data
    /// quality: the provider may bill them.
    @Test func unmeteredCallsAreListedByKeyAndNotPriced() async throws {
        let f = try AuditFixture()
        defer { f.remove() }
        try f.segment([
            AuditFixture.line(ts: "2026-11-10T10:00:00Z", outcome: .unmetered, usage: nil),
            AuditFixture.line(ts: "2026-11-10T10:00:01Z", outcome: .unmetered, status: 404, usage: nil),
            AuditFixture.line(ts: "2026-11-10T10:00:02Z", key: "k-dan", outcome: .unmetered, usage: nil),
            AuditFixture.line(ts: "2026-11-10T10:00:03Z", usage: .init(input: 1_000, output: 100)),
            AuditFixture.line(ts: "2026-10-10T10:00:03Z", outcome: .unmetered, usage: nil),
        ])
        let result = try await f.audit()
        #expect(result.totals.events == 5 && result.totals.quarantined == 0)
        let ledger = try Ledger(path: f.ledgerPath, readOnly: true)
        let report = try PeriodReportBuilder.build(
            ledger: ledger, config: f.config, period: try Period(parsing: "2026-11"), asOf: Timestamp.parse("2026-11-30T00:00:00Z")!)
        #expect(
            report.dataQuality.unmetered == [
                UnmeteredCalls(team: "search", key: "k-alice", provider: "openai", requests: 2, failed: 1),
                UnmeteredCalls(team: "support", key: "k-dan", provider: "openai", requests: 1, failed: 0),
            ])
        #expect(report.total == (try Money(parsing: "0.0012")), "only the metered call: 1,000 × 1e-6 + 100 × 2e-6")
        #expect(report.unpriced.isEmpty)
        let html = HTMLReport.render(report)
        #expect(html.contains("3 calls to endpoints Tally does not meter"))
    }
}
