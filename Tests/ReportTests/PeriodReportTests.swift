import Foundation
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Report

/// The report files as finance and an executive read them, from hand-built values with hostile names.
@Suite("period report files")
struct PeriodReportTests {
    static func money(_ text: String) -> Money { try! Money(parsing: text) }

    /// A month with names that would run as formulas or scripts if written raw.
    static var hostile: PeriodReport {
        let start = Timestamp.parse("2026-11-01T00:00:00Z")!
        let day: Int64 = 86_400_000
        func row(_ date: Int, team: String, user: String, model: String, cost: String, unpriced: Int64 = 0) -> AttributionRow {
            AttributionRow(
                date: String(format: "2026-11-%02d", date), dayStart: start + Int64(date - 1) * day, dayEnd: start + Int64(date) * day,
                org: "acme", team: team, project: "ranking", user: user, key: "k-\(user)", provider: "openai", model: model,
                requests: 3, tokens: TokenCounts(input: 1000, output: 300, cachedInput: 200, cacheWrite: 0, reasoning: 50),
                cost: money(cost),
                unpricedRequests: unpriced)
        }
        return PeriodReport(
            period: "2026-11", firstDay: "2026-11-01", lastDay: "2026-11-30", start: start, end: start + 30 * day, timezone: "UTC",
            currency: "USD", organisations: ["Acme <b>Corp</b>"], asOf: start + 15 * day,
            previous: PreviousPeriod(period: "2026-10", total: money("10"), toSamePoint: money("4")),
            attribution: [
                row(1, team: "search", user: "=HYPERLINK(\"http://evil\",\"x\")", model: "<script>alert(1)</script>", cost: "0.1234567891"),
                row(2, team: "+cmd|' /C calc'!A0", user: "@SUM(A1)", model: "gpt-4o", cost: "2.5"),
                row(3, team: "-2+3", user: "\tindent", model: "gpt,4o \"quoted\"\nnext", cost: "0.000000000001"),
                row(4, team: "search", user: "bob", model: "mystery", cost: "0", unpriced: 3),
            ],
            budgets: [
                BudgetStatus(
                    scope: .team, id: "search", budget: Budget(limit: money("10"), period: .month, hard: true), firstDay: 0,
                    lastDay: 0, periodLabel: "2026-11", periodStart: 0, periodEnd: 0, spend: money("8.25"), projected: money("16.5"))
            ],
            waste: [
                WasteFinding(
                    kind: "exact_duplicate", subject: "abc123", model: "<img src=x onerror=alert(2)>", team: "search", keys: ["k-a"],
                    users: ["=1+1"], firstSeen: start, lastSeen: start + 1000, calls: 3, repeats: 2, errors: 0, cost: money("0.02"),
                    countsAsWaste: true, detail: "")
            ],
            unpriced: [
                UnpricedRow(
                    provider: "openai", model: "mystery", requests: 3,
                    tokens: TokenCounts(input: 1000, output: 300, cachedInput: 200, cacheWrite: 0, reasoning: 50))
            ],
            providerNames: ["openai": "OpenAI"])
    }

    @Test func textFromOutsideCannotRunAsAFormula() throws {
        let rows = CSVParser.parse(AttributionCSV().render(Self.hostile))
        #expect(rows[0].count == 17 && rows.allSatisfy { $0.count == 17 })
        let users = rows.dropFirst().map { $0[4] }
        #expect(users == ["'=HYPERLINK(\"http://evil\",\"x\")", "'@SUM(A1)", "'\tindent", "bob"])
        #expect(rows[2][2] == "'+cmd|' /C calc'!A0" && rows[3][2] == "'-2+3")
        // Commas, quotes and line breaks survive the round trip inside one cell.
        #expect(rows[3][7] == "gpt,4o \"quoted\"\nnext")
        // Every dangerous cell is quoted, so no spreadsheet sees a bare formula.
        let raw = AttributionCSV().render(Self.hostile)
        for bad in ["=HYPERLINK", "@SUM", "+cmd", "-2+3"] { #expect(!raw.contains("," + bad), "\(bad) reached a cell unguarded") }
        #expect(CSVParser.parse(try WasteCSV().text(Self.hostile))[1][5] == "'=1+1")
    }

    @Test func moneyIsExactWithSixPlacesAndTheCostColumnSumsToTheTotal() throws {
        let report = Self.hostile
        let rows = CSVParser.parse(AttributionCSV().render(report))
        let costs = rows.dropFirst().map { $0[14] }
        #expect(costs == ["0.1234567891", "2.500000", "0.000000000001", ""])
        #expect(rows[4][16] == "3")  // the unpriced row: empty cost, its requests counted apart
        var sum = Money.zero
        for cost in costs where !cost.isEmpty { sum += try Money(parsing: cost) }
        #expect(sum == report.total)
        #expect(report.total == Self.money("2.623456789101"))
        let html = HTMLReport.render(report)
        #expect(html.contains("<span data-exact-total>2.623456789101</span>"))
        #expect(html.contains("2.62 <small>USD</small>"))
        #expect(
            CSVParser.parse(BudgetsCSV().render(report))[1] == [
                "team", "search", "month", "2026-11", "true", "10.000000", "10.000000", "8.250000",
                "0.8250", "16.500000", "at_risk", "USD", "0.000000",
            ])
    }

    @Test func focusHasTheMandatoryColumnsInItsFormats() throws {
        let rows = CSVParser.parse(FocusCSV().render(Self.hostile))
        let header = rows[0]
        let mandatory = [
            "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
            "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass",
            "ChargeDescription", "InvoiceIssuerName", "ProviderName", "PublisherName", "ServiceName", "ServiceCategory",
            "PricingQuantity", "PricingUnit", "ChargeFrequency", "ServiceSubcategory", "ConsumedQuantity", "ConsumedUnit",
            "SubAccountId", "SubAccountName", "Tags", "ResourceId", "SkuId",
        ]
        for column in mandatory { #expect(header.contains(column), "missing \(column)") }
        // Our own columns come after FOCUS's, all prefixed x_.
        let firstOwn = try #require(header.firstIndex { $0.hasPrefix("x_") })
        #expect(header[firstOwn...].allSatisfy { $0.hasPrefix("x_") } && header[..<firstOwn].allSatisfy { !$0.hasPrefix("x_") })
        let time = try Regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
        let number = try Regex("^[0-9]+(\\.[0-9]+)?$")
        for row in rows.dropFirst() {
            let cell = Dictionary(uniqueKeysWithValues: zip(header, row))
            for column in ["BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"] {
                #expect(cell[column]!.wholeMatch(of: time) != nil, "\(column) = \(cell[column]!)")
            }
            for column in ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity", "ConsumedQuantity"] {
                #expect(cell[column]!.wholeMatch(of: number) != nil, "\(column) = \(cell[column]!) is not a plain number")
            }
            #expect(cell["ChargeCategory"] == "Usage" && cell["ChargeFrequency"] == "Usage-Based" && cell["ChargeClass"] == "")
            #expect(
                cell["ServiceCategory"] == "AI and Machine Learning" && cell["ConsumedUnit"] == "Tokens"
                    && cell["PricingUnit"] == "1000000 Tokens")
            // A decimal (the validator infers types from the text), exactly the consumed tokens in millions.
            #expect(cell["PricingQuantity"] == "0.001300")
            #expect(cell["InvoiceId"] == "", "null while no invoice is known")
            #expect(cell["BillingCurrency"] == "USD" && cell["ProviderName"] == "OpenAI")
            #expect(cell["ConsumedQuantity"] == "1300")  // input + output; cached and reasoning tokens are parts of them
            let tags = try #require(try? JSONValue.parse(Array(cell["Tags"]!.utf8)))
            guard case .object(let members) = tags else {
                Issue.record("Tags is not a JSON object")
                continue
            }
            #expect(Set(members.map(\.key)) == ["org", "team", "project", "user", "key"])
        }
        #expect(rows[1][header.firstIndex(of: "SubAccountId")!] == "search")
        #expect(rows[1][header.firstIndex(of: "ChargePeriodStart")!] == "2026-11-01T00:00:00Z")
        #expect(rows[1][header.firstIndex(of: "ChargePeriodEnd")!] == "2026-11-02T00:00:00Z")
    }

    @Test func theHTMLShowsHostileNamesAsTextAndNeedsNothingFromOutside() {
        let html = HTMLReport.render(Self.hostile)
        #expect(!html.contains("<script>alert(1)</script>"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!html.contains("<img src=x"))
        #expect(!html.contains("<b>Corp</b>") && html.contains("Acme &lt;b&gt;Corp&lt;/b&gt;"))
        // Self-contained: no scripts, and nothing fetched from elsewhere.
        #expect(!html.contains("<script") && !html.contains("<link") && !html.contains("@import") && !html.contains("url("))
        #expect(!html.contains("src=\"http") && !html.contains("href=\"http"))
        // The chart has a text equivalent and a title for screen readers, and the page prints with breaks.
        #expect(html.contains("role=\"img\" aria-labelledby=\"daily-title daily-desc\""))
        #expect(html.contains("<caption>Spend per day by team"))
        #expect(html.contains("@media print") && html.contains("break-before:page"))
        // The executive's first screen.
        for figure in ["Spend", "Projected for the period", "Budget utilisation", "Waste", "Breaches and revocations", "Unpriced calls"] {
            #expect(html.contains(">\(figure)</h3>"))
        }
        #expect(html.contains("▼ 34.4% against the same point of 2026-10 (4.00)"))
    }

    /// Every gridline label of the daily chart is the exact value of its line, whatever the highest day: no 62.5
    /// shown as "63" (a finance reader checks the bars against the axis).
    @Test func chartAxisLabelsAreRoundNumbers() {
        for peak in [0.07, 0.7, 1.7, 2.3, 4.1, 9, 23, 49, 180, 240, 420, 999, 2_400, 9_000, 24_000, 48_000, 130_000] {
            let (top, divisions) = ChartAxis.scale(peak)
            #expect(top >= peak && top < peak * 10, "top \(top) for \(peak)")
            for i in 0...divisions {
                let value = top * Double(i) / Double(divisions)
                let label = ChartAxis.label(value)
                let shown = label.hasSuffix("k") ? Double(label.dropLast())! * 1000 : Double(label)!
                #expect(abs(shown - value) < 1e-9 * max(1, value), "peak \(peak): line \(value) labelled \(label)")
            }
        }
    }

    @Test func foldersAreReplacedAtomicallyAndTheManifestNamesEveryFile() throws {
        let folder = NSTemporaryDirectory() + "tally-report-folder-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var report = Self.hostile
        try ReportFolder.write(report, to: folder)
        let path = folder + "/attribution.csv"
        let before = try String(contentsOfFile: path, encoding: .utf8)
        // A reader holding the old file keeps reading it whole while the new one replaces it.
        let reader = try #require(FileHandle(forReadingAtPath: path))
        defer { try? reader.close() }
        report.attribution.removeLast(2)
        try ReportFolder.write(report, to: folder)
        let held = String(decoding: try reader.readToEnd() ?? Data(), as: UTF8.self)
        #expect(held == before)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == AttributionCSV().render(report))
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(names == (ReportFolder.fileNames + [ReportFolder.manifestName]).sorted(), "temporary files were left behind")
        let manifest = try String(contentsOfFile: folder + "/manifest.json", encoding: .utf8)
        #expect(manifest.contains(#""sha256":""# + Hex.sha256(bytes: Array(AttributionCSV().render(report).utf8))))
        #expect(manifest.contains(#""final":false"#) && manifest.contains(#""total_cost":"2.6234567891""#))
    }
}

/// waste.csv from rows that are not in memory: written in pieces, the same bytes as from memory, and a failed read
/// leaves the folder as it was.
@Suite("waste findings from a source")
struct WasteSourceTests {
    /// Hands over `count` findings in order, or fails after `failAfter` of them, as a ledger that went away would.
    final class Rows: WasteFindingSource {
        let count: Int
        let failAfter: Int?
        init(count: Int, failAfter: Int? = nil) {
            self.count = count
            self.failAfter = failAfter
        }
        func forEachRow(_ body: (WasteFinding) throws(FileIOError) -> Void) throws(FileIOError) {
            for i in 0..<count {
                if i == failAfter { throw FileIOError(code: .io, message: "the ledger went away after \(i) rows") }
                try body(WasteSourceTests.row(i))
            }
        }
    }

    /// Costs fall with `i` and repeat in pairs (ties); every tenth has several keys and a name that needs guarding.
    static func row(_ i: Int) -> WasteFinding {
        WasteFinding(
            kind: i < 20_000 ? "exact_duplicate" : "near_duplicate", subject: String(format: "%012x", i * 7919), model: "m\(i % 3)",
            team: i % 10 == 0 ? "=team" : "search", keys: i % 10 == 0 ? ["k-a", "k-b", "k-c"] : ["k-a"], users: ["alice"],
            firstSeen: 1_700_000_000_000 + Int64(i) * 1000, lastSeen: 1_700_000_000_000 + Int64(i) * 1000 + 500, calls: 3, repeats: 2,
            errors: Int64(i % 2), cost: Money(picos: Int128(1_000_000_000 - (i % 20_000) / 2 * 1000)), countsAsWaste: i < 20_000, detail: ""
        )
    }

    @Test func aSourcesRowsGiveTheSameFilesAsRowsInMemoryAndAFailedReadKeepsTheOldOnes() throws {
        let folder = NSTemporaryDirectory() + "tally-waste-source-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let count = 30_000  // about 4 MB of CSV: several pieces
        var report = PeriodReportTests.hostile
        let inMemory = WasteFindings((0..<count).map(Self.row))
        report.waste = inMemory
        let fromMemory = try ReportFolder.write(report, to: folder)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: folder + "/waste.csv"))
        #expect(bytes.count > 3 << 20)
        #expect(CSVParser.parse(String(decoding: bytes, as: UTF8.self)).count == count + 1)

        report.waste = WasteFindings(kinds: inMemory.kinds, costliest: inMemory.costliest, source: Rows(count: count))
        let fromSource = try ReportFolder.write(report, to: folder)
        #expect(fromSource.map(\.sha256) == fromMemory.map(\.sha256) && fromSource.map(\.size) == fromMemory.map(\.size))
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/waste.csv")) == bytes)
        #expect(Hex.sha256(bytes: Array(bytes)) == fromSource[ReportFolder.fileNames.firstIndex(of: "waste.csv")!].sha256)

        // The totals and the page's list come from the summary, whatever the rows.
        #expect(
            inMemory.kinds["exact_duplicate"]
                == WasteFindings.KindTotal(
                    findings: 20_000, cost: (0..<20_000).reduce(Money.zero) { $0 + Self.row($1).cost },
                    countsAsWaste: true))
        #expect(
            inMemory.costliest.map(\.subject)
                == [0, 1, 20_000, 20_001, 2, 3, 20_002, 20_003, 4, 5, 20_004, 20_005, 6, 7, 20_006].map { Self.row($0).subject },
            "equal costs: exact before near, then by subject")

        let manifest = try Data(contentsOf: URL(fileURLWithPath: folder + "/manifest.json"))
        report.waste = WasteFindings(kinds: inMemory.kinds, costliest: inMemory.costliest, source: Rows(count: count, failAfter: 25_000))
        #expect { try ReportFolder.write(report, to: folder) } throws: { error in
            (error as? FileIOError)?.message == "the ledger went away after 25000 rows"
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/waste.csv")) == bytes, "the old waste.csv was replaced")
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/manifest.json")) == manifest)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(names == (ReportFolder.fileNames + [ReportFolder.manifestName]).sorted(), "a temporary file was left behind")
    }
}

/// RFC 4180 reading, to check what a spreadsheet would see.
enum CSVParser {
    static func parse(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var cell = ""
        var quoted = false
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" {
                        cell.append("\"")
                        chars.removeFirst()
                    } else {
                        quoted = false
                    }
                } else {
                    cell.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                row.append(cell)
                cell = ""
            } else if c == "\r\n" || c == "\n" {
                row.append(cell)
                rows.append(row)
                row = []
                cell = ""
            } else {
                cell.append(c)
            }
        }
        if !cell.isEmpty || !row.isEmpty {
            row.append(cell)
            rows.append(row)
        }
        return rows
    }
}
