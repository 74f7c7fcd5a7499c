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

    static func quoted(_ value: String) -> String {
        "\"" + value.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }

    /// Joins cells into lines ending in CRLF, as RFC 4180 has it.
    public static func document(_ rows: [[String]]) -> String {
        rows.map { $0.joined(separator: ",") + "\r\n" }.joined()
    }
}
