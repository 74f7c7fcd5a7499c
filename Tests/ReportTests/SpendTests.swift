import Foundation
import TallyConfig
import TallyCore
import Testing

@testable import Report

@Suite struct SpendTests {
    func breakdown() throws -> SpendBreakdown {
        var a = SpendTotals()
        a.requests = 1200
        a.tokens.input = 1_500_000
        a.tokens.output = 20_000
        a.cost = Money(picos: 12_345_678_901_234)  // 12.345678901234
        var b = SpendTotals()
        b.requests = 3
        b.unpriced = 1
        b.cost = Money(picos: 130_000_000_000)  // 0.13
        var total = a
        total.add(b)
        return SpendBreakdown(
            period: "2026-11", firstDay: "2026-11-01", lastDay: "2026-11-30", timezone: "Europe/Berlin",
            currency: "USD", dimensions: ["team", "model"],
            lines: [
                SpendLine(values: ["search", "gpt-4o"], totals: a),
                SpendLine(values: ["=HYPERLINK(\"x\")", "a,b"], totals: b),
            ],
            total: total, unpriced: [])
    }

    @Test func csvIsExactAndGuardsFormulas() throws {
        let csv = try breakdown().csv()
        let lines = csv.components(separatedBy: "\r\n")
        #expect(
            lines[0]
                == "team,model,requests,failed,rejected,unpriced,input_tokens,output_tokens,cached_input_tokens,cache_write_tokens,reasoning_tokens,cost,currency"
        )
        #expect(lines[1] == "search,gpt-4o,1200,0,0,0,1500000,20000,0,0,0,12.345678901234,USD")
        #expect(lines[2] == "\"'=HYPERLINK(\"\"x\"\")\",\"a,b\",3,0,0,1,0,0,0,0,0,0.13,USD")
        #expect(lines[3] == "TOTAL,,1203,0,0,1,1500000,20000,0,0,0,12.475678901234,USD")
    }

    @Test func tableRoundsToCentsAndMarksUnpriced() throws {
        let table = try breakdown().table()
        #expect(table.contains("12.35"))
        #expect(table.contains("12.48 +unpriced"))
        #expect(table.contains("1,500,000"))
    }

    @Test func jsonCarriesExactCostAsText() throws {
        let json = try breakdown().json()
        #expect(json.contains(#""cost":"12.345678901234""#))
        #expect(json.contains(#""team":"=HYPERLINK(\"x\")""#))
    }

    @Test func exactMoneyDropsTrailingZerosButKeepsCents() throws {
        #expect(Money(picos: 0).exact == "0.00")
        #expect(Money(picos: 12_500_000_000_000).exact == "12.50")
        #expect(Money(picos: 13_000_000_000).exact == "0.013")
        #expect(Money(picos: -1).exact == "-0.000000000001")
    }
}
