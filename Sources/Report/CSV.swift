import TallyConfig
import UsageLog

/// RFC 4180 CSV with the OWASP guard against formula injection (OWASP "CSV Injection").
public enum CSV {
    /// A cell of text that came from outside (names, tags, models): quoted when needed, and prefixed with `'` when a
    /// spreadsheet would read it as a formula.
    public static func text(_ value: String) -> String {
        var value = value
        if let first = value.unicodeScalars.first, "=+-@\t\r\n\0".unicodeScalars.contains(first) {
            value = "'" + value
            return quoted(value)
        }
        if value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) { return quoted(value) }
        return value
    }

    /// A number the program wrote itself: never escaped (the column is documented as numeric).
    public static func number(_ value: String) -> String { value }

    /// Money for reconciliation: exact, at least six decimal places, no separators or symbol (`12.500000`,
    /// `0.000000375`).
    public static func money(_ value: Money) -> String {
        var text = Substring(value.formatted(places: Money.scaleDigits))
        while text.last == "0", let dot = text.firstIndex(of: "."), text.distance(from: dot, to: text.endIndex) > 7 {
            text = text.dropLast()
        }
        return String(text)
    }

    /// A time in UTC to the second, `2026-11-22T09:15:00Z` (milliseconds dropped); empty for nil.
    public static func time(_ milliseconds: Int64?) -> String {
        guard let milliseconds else { return "" }
        let (seconds, _) = Timestamp.floorDivide(milliseconds, 1000)
        var text = Timestamp.format(milliseconds: seconds * 1000)
        if let dot = text.firstIndex(of: ".") { text = String(text[..<dot]) + "Z" }
        return text
    }

    static func quoted(_ value: String) -> String {
        "\"" + value.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }

    /// Joins cells into lines ending in CRLF, as RFC 4180 has it.
    public static func document(_ rows: [[String]]) -> String {
        var out = ""
        for row in rows { append(row, to: &out) }
        return out
    }

    /// Appends one record: cells joined by commas, ended by CRLF.
    public static func append(_ row: [String], to out: inout String) {
        var first = true
        for cell in row {
            if !first { out += "," }
            out += cell
            first = false
        }
        out += "\r\n"
    }
}
