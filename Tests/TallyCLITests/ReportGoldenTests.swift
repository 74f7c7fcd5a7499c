import Foundation
import Report
import TallyConfig
import TallyCore
import Testing

@testable import TallyCLI
@testable import TallyLedger

/// The demo organisation's reports, byte for byte: a diff here is a change in what finance receives.
/// Regenerate with `TALLY_UPDATE_GOLDEN=1 swift test --filter ReportGoldenTests` and read the diff before committing.
@Suite("report golden files")
struct ReportGoldenTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path
    static let asOf = "2026-11-23T10:00:00Z"

    func run(_ arguments: [String]) async -> Int32 { await CLITests().run(arguments) }

    @Test func theDemoMonthsReportsMatchTheGoldenFiles() async throws {
        let w = try AuditCLITests.Workspace()
        defer { w.remove() }
        #expect(await run(["synth", "--config", w.configPath, "--events", "3000", "--days", "30", "--seed", "7", "--end", Self.asOf]) == 0)
        #expect(await run(["audit", "--config", w.configPath, "--quiet", "--apply", "--as-of", Self.asOf]) == 0)
        let update = ProcessInfo.processInfo.environment["TALLY_UPDATE_GOLDEN"] == "1"
        for month in ["2026-10", "2026-11"] {
            for name in ReportFolder.fileNames + [ReportFolder.manifestName] {
                let actual = try String(contentsOfFile: "\(w.root)/reports/\(month)/\(name)", encoding: .utf8)
                let path = "\(Self.golden)/\(month)/\(name)"
                if update {
                    try FileManager.default.createDirectory(atPath: "\(Self.golden)/\(month)", withIntermediateDirectories: true)
                    try actual.write(toFile: path, atomically: true, encoding: .utf8)
                    continue
                }
                let expected = try String(contentsOfFile: path, encoding: .utf8)
                #expect(
                    actual == expected,
                    "\(month)/\(name) differs from \(path); if the change is intended, regenerate with TALLY_UPDATE_GOLDEN=1")
            }
        }

        // Across files the figures agree: attribution.csv, focus.csv, the HTML total and the manifest.
        let folder = "\(w.root)/reports/2026-11"
        let attribution = CSVRows(try String(contentsOfFile: folder + "/attribution.csv", encoding: .utf8))
        let focus = CSVRows(try String(contentsOfFile: folder + "/focus.csv", encoding: .utf8))
        let total = try attribution.sum("cost")
        #expect(try focus.sum("BilledCost") == total)
        #expect(try focus.sum("EffectiveCost") == total)
        // FOCUS shows a row's calls by served tier and price notes: more rows, the same calls and tokens.
        #expect(focus.rows.count > attribution.rows.count)
        #expect(try focus.sum("x_Requests") == (try attribution.sum("requests")))
        #expect(try focus.sum("x_InputTokens") == (try attribution.sum("input_tokens")))
        let html = try String(contentsOfFile: folder + "/report.html", encoding: .utf8)
        #expect(html.contains("<span data-exact-total>\(CSV.money(total))</span>"))
        #expect(try String(contentsOfFile: folder + "/manifest.json", encoding: .utf8).contains(#""total_cost":"\#(CSV.money(total))""#))
        let waste = CSVRows(try String(contentsOfFile: folder + "/waste.csv", encoding: .utf8))
        let counted = waste.rows.filter { $0[waste.column("counts_as_waste")] == "true" }
        #expect(!counted.isEmpty)
        let wasteTotal = try counted.reduce(Money.zero) { $0 + (try Money(parsing: $1[waste.column("cost")])) }
        #expect(html.contains("Waste total</th><td></td><td class=\"num\">\(wasteTotal.formatted(places: 2))</td>"))

        // `tally report` writes the same month from the ledger alone, into any folder.
        let out = w.root + "/by-hand"
        #expect(await run(["report", "--config", w.configPath, "--period", "2026-10", "--out", out, "--as-of", Self.asOf]) == 0)
        #expect(
            try String(contentsOfFile: out + "/attribution.csv", encoding: .utf8)
                == String(contentsOfFile: "\(w.root)/reports/2026-10/attribution.csv", encoding: .utf8))
        #expect(try String(contentsOfFile: out + "/manifest.json", encoding: .utf8).contains(#""final":true"#))
        #expect(await run(["report", "--config", w.configPath, "--period", "2026-W47", "--out", out]) == 64)
        // Without --out, a month that has ended is not written over: its final report is the audit's.
        let filed = try String(contentsOfFile: "\(w.root)/reports/2026-10/manifest.json", encoding: .utf8)
        #expect(await run(["report", "--config", w.configPath, "--period", "2026-10"]) == 64)
        #expect(try String(contentsOfFile: "\(w.root)/reports/2026-10/manifest.json", encoding: .utf8) == filed)
    }
}

/// A CSV file's rows by column name (the files' cells are simple enough here to split on commas outside quotes).
struct CSVRows {
    let header: [String]
    let rows: [[String]]

    init(_ text: String) {
        var all: [[String]] = []
        var row: [String] = []
        var cell = ""
        var quoted = false
        for c in text {
            if quoted {
                if c == "\"" { quoted = false } else { cell.append(c) }
                continue
            }
            switch c {
            case "\"": quoted = true
            case ",":
                row.append(cell)
                cell = ""
            case "\r\n", "\n":
                row.append(cell)
                all.append(row)
                row = []
                cell = ""
            default: cell.append(c)
            }
        }
        header = all.first ?? []
        rows = Array(all.dropFirst())
    }

    func column(_ name: String) -> Int { header.firstIndex(of: name)! }

    func sum(_ name: String) throws -> Money {
        let i = column(name)
        return try rows.reduce(Money.zero) { $0 + ($1[i].isEmpty ? .zero : try Money(parsing: $1[i])) }
    }
}
