import TallyCore

/// Requests, tokens and cost of a group of calls.
public struct SpendTotals: Sendable, Equatable {
    public var requests: Int64 = 0
    /// Calls that failed upstream or were aborted by the client (priced when they carried usage).
    public var failed: Int64 = 0
    /// Calls the collector refused (revoked, unknown or invalid key): never sent, never billed.
    public var rejected: Int64 = 0
    /// Calls with usage whose model has no price: their tokens are counted, their cost is not.
    public var unpriced: Int64 = 0
    public var tokens = TokenCounts()
    public var cost = Money.zero

    public init() {}

    public mutating func add(_ other: SpendTotals) {
        requests += other.requests
        failed += other.failed
        rejected += other.rejected
        unpriced += other.unpriced
        tokens += other.tokens
        cost += other.cost
    }
}

/// One line of a breakdown: the values of the chosen dimensions, and the totals of the calls that share them.
public struct SpendLine: Sendable, Equatable {
    public var values: [String]
    public var totals: SpendTotals

    public init(values: [String], totals: SpendTotals) {
        self.values = values
        self.totals = totals
    }
}

/// A model that had calls with usage but no price, and their tokens.
public struct UnpricedModel: Sendable, Equatable {
    public var provider: String
    public var model: String
    public var totals: SpendTotals

    public init(provider: String, model: String, totals: SpendTotals) {
        self.provider = provider
        self.model = model
        self.totals = totals
    }
}

/// Spend over a period broken down by some dimensions (`tally report attribution`).
public struct SpendBreakdown: Sendable, Equatable {
    /// The period as asked for (`2026-11`, `2026-W47`, `2026-11-22`, `2026-11-01..2026-11-15`).
    public var period: String
    /// First and last day, both included, `YYYY-MM-DD`, in `timezone`.
    public var firstDay: String
    public var lastDay: String
    public var timezone: String
    public var currency: String
    /// The dimension names, in the order of each line's values.
    public var dimensions: [String]
    public var lines: [SpendLine]
    public var total: SpendTotals
    public var unpriced: [UnpricedModel]

    public init(
        period: String, firstDay: String, lastDay: String, timezone: String, currency: String, dimensions: [String],
        lines: [SpendLine], total: SpendTotals, unpriced: [UnpricedModel]
    ) {
        self.period = period
        self.firstDay = firstDay
        self.lastDay = lastDay
        self.timezone = timezone
        self.currency = currency
        self.dimensions = dimensions
        self.lines = lines
        self.total = total
        self.unpriced = unpriced
    }
}

// MARK: - Writers

extension SpendBreakdown {
    /// The numeric columns every format carries, in order.
    static let measureNames = [
        "requests", "failed", "rejected", "unpriced", "input_tokens", "output_tokens",
        "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "cost",
    ]

    static func measures(_ t: SpendTotals, cost: String) -> [String] {
        [
            t.requests, t.failed, t.rejected, t.unpriced, t.tokens.input, t.tokens.output, t.tokens.cachedInput, t.tokens.cacheWrite,
            t.tokens.reasoning,
        ].map { String($0) } + [cost]
    }

    /// CSV for finance: one row per line, then a `TOTAL` row; cost exact (trailing zeros dropped), with the currency.
    /// Text columns are guarded against formula injection; the measure columns are numeric.
    public func csv() -> String {
        var rows = [dimensions + Self.measureNames + ["currency"]]
        for line in lines {
            rows.append(line.values.map(CSV.text) + Self.measures(line.totals, cost: line.totals.cost.exact) + [CSV.text(currency)])
        }
        let totalLabel = dimensions.isEmpty ? [] : ["TOTAL"] + Array(repeating: "", count: dimensions.count - 1)
        rows.append(totalLabel + Self.measures(total, cost: total.cost.exact) + [CSV.text(currency)])
        return CSV.document(rows)
    }

    /// An aligned table for a terminal: cost rounded to cents, a total line, and the unpriced models below.
    public func table() -> String {
        var out = "Spend \(period) (\(firstDay) to \(lastDay), \(timezone)), \(currency)\n\n"
        let header = dimensions + ["requests", "failed", "input", "output", "cached", "cache_write", "reasoning", "cost"]
        func cells(_ t: SpendTotals) -> [String] {
            [t.requests, t.failed, t.tokens.input, t.tokens.output, t.tokens.cachedInput, t.tokens.cacheWrite, t.tokens.reasoning].map(
                Self.grouped)
                + [t.cost.grouped + (t.unpriced > 0 ? " +unpriced" : "")]
        }
        var rows = lines.map { $0.values.map(Self.printable) + cells($0.totals) }
        let totalRow = (dimensions.isEmpty ? [] : ["TOTAL"] + Array(repeating: "", count: dimensions.count - 1)) + cells(total)
        rows.append(totalRow)
        out += TextTable.render(header: header, rows: rows, numericFrom: dimensions.count, ruleBeforeLast: true)
        if !unpriced.isEmpty {
            out += "\nUnpriced (usage but no price; not in cost — add a price to pricing.models or a LiteLLM file):\n"
            let unpricedRows = unpriced.map { u in
                [Self.printable(u.provider), Self.printable(u.model)]
                    + [
                        u.totals.unpriced, u.totals.tokens.input, u.totals.tokens.output, u.totals.tokens.cachedInput,
                        u.totals.tokens.cacheWrite, u.totals.tokens.reasoning,
                    ].map(Self.grouped)
            }
            out += TextTable.render(
                header: ["provider", "model", "calls", "input", "output", "cached", "cache_write", "reasoning"],
                rows: unpricedRows, numericFrom: 2, ruleBeforeLast: false)
        }
        return out
    }

    /// JSON for scripts: cost as an exact decimal string, counts as integers.
    public func json() -> String {
        var out: [UInt8] = []
        func key(_ name: String) {
            JSONWriter.appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
        }
        func totals(_ t: SpendTotals) {
            let values: [(String, Int64)] = [
                ("requests", t.requests), ("failed", t.failed), ("rejected", t.rejected),
                ("unpriced", t.unpriced), ("input_tokens", t.tokens.input), ("output_tokens", t.tokens.output),
                ("cached_input_tokens", t.tokens.cachedInput), ("cache_write_tokens", t.tokens.cacheWrite),
                ("reasoning_tokens", t.tokens.reasoning),
            ]
            for (name, value) in values {
                key(name)
                JSONWriter.appendInteger(value, to: &out)
                out.append(UInt8(ascii: ","))
            }
            key("cost")
            JSONWriter.appendString(t.cost.exact, to: &out)
        }
        out.append(UInt8(ascii: "{"))
        for (name, value) in [("period", period), ("from", firstDay), ("to", lastDay), ("timezone", timezone), ("currency", currency)] {
            key(name)
            JSONWriter.appendString(value, to: &out)
            out.append(UInt8(ascii: ","))
        }
        key("by")
        out.append(UInt8(ascii: "["))
        for (i, name) in dimensions.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(name, to: &out)
        }
        out += Array("],".utf8)
        key("lines")
        out.append(UInt8(ascii: "["))
        for (i, line) in lines.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "{"))
            for (name, value) in zip(dimensions, line.values) {
                key(name)
                JSONWriter.appendString(value, to: &out)
                out.append(UInt8(ascii: ","))
            }
            totals(line.totals)
            out.append(UInt8(ascii: "}"))
        }
        out += Array("],".utf8)
        key("total")
        out.append(UInt8(ascii: "{"))
        totals(total)
        out += Array("},".utf8)
        key("unpriced")
        out.append(UInt8(ascii: "["))
        for (i, u) in unpriced.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "{"))
            key("provider")
            JSONWriter.appendString(u.provider, to: &out)
            out.append(UInt8(ascii: ","))
            key("model")
            JSONWriter.appendString(u.model, to: &out)
            out.append(UInt8(ascii: ","))
            totals(u.totals)
            out.append(UInt8(ascii: "}"))
        }
        out += Array("]}\n".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    /// `1234567` → `1,234,567`.
    static func grouped(_ value: Int64) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return value < 0 ? "-" + out : out
    }

    /// Text from outside made safe for a terminal: control characters shown as `?`.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || ($0.value >= 0x7F && $0.value < 0xA0) ? "?" : $0 }))
    }
}

/// Columns padded to their widest cell; numbers right-aligned.
public enum TextTable {
    /// A table for a terminal: the columns in `rightAligned` are padded on the left; cells from outside are made
    /// printable.
    public static func render(header: [String], rows: [[String]], rightAligned: Set<Int>) -> String {
        render(
            header: header, rows: rows.map { $0.map(SpendBreakdown.printable) }, numeric: { rightAligned.contains($0) },
            ruleBeforeLast: false)
    }

    static func render(header: [String], rows: [[String]], numericFrom: Int, ruleBeforeLast: Bool) -> String {
        render(header: header, rows: rows, numeric: { $0 >= numericFrom }, ruleBeforeLast: ruleBeforeLast)
    }

    private static func render(header: [String], rows: [[String]], numeric: (Int) -> Bool, ruleBeforeLast: Bool) -> String {
        var widths = header.map { $0.count }
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return numeric(i) ? pad + cell : cell + pad
            }.joined(separator: "  ").replacingTrailingSpaces() + "\n"
        }
        var out = line(header)
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        out += rule
        for (i, row) in rows.enumerated() {
            if ruleBeforeLast && i == rows.count - 1 { out += rule }
            out += line(row)
        }
        return out
    }
}

extension String {
    fileprivate func replacingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
