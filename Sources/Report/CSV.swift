import TallyCore

/// RFC 4180 CSV with the OWASP guard against formula injection (OWASP "CSV Injection").
public enum CSV {
    /// A cell of text that came from outside (names, tags, models): quoted when needed, and prefixed with `'` when a
    /// spreadsheet would read it as a formula.
    public static func text(_ value: String) -> String {
        // One pass over the bytes: every character that matters here is ASCII.
        var quote = false
        var isFirst = true
        for byte in value.utf8 {
            if isFirst {
                isFirst = false
                switch byte {
                case UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "@"), 0x09, 0x0D, 0x0A, 0x00:
                    return quoted("'" + value)
                default: break
                }
            }
            if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "\"") || byte == 0x0A || byte == 0x0D {
                quote = true
                break
            }
        }
        return quote ? quoted(value) : value
    }

    /// Money for reconciliation: exact, at least six decimal places, no separators or symbol (`12.500000`,
    /// `0.000000375`).
    public static func money(_ value: Money) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        value.appendExact(to: &bytes, minimumPlaces: 6)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A time in UTC to the second, `2026-11-22T09:15:00Z` (milliseconds dropped); empty for nil.
    public static func time(_ milliseconds: Int64?) -> String {
        guard let milliseconds else { return "" }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(20)
        appendTime(milliseconds, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `YYYY-MM-DDTHH:MM:SSZ`: the usage log's UTC form without its milliseconds (floored to the second).
    static func appendTime(_ milliseconds: Int64, to out: inout [UInt8]) {
        let (seconds, _) = Timestamp.floorDivide(milliseconds, 1000)
        let start = out.count
        Timestamp.append(milliseconds: seconds * 1000, to: &out)
        if out.count - start == 24 { out.removeSubrange(start + 19..<start + 23) }
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

/// A CSV document built as bytes, for the files that can run to hundreds of thousands of rows: the same cells as
/// `CSV.text`, `CSV.money` and `CSV.time`, without a string per cell.
struct CSVBuffer {
    var bytes: [UInt8] = []
    private var atLineStart = true

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    private mutating func separate() {
        if !atLineStart { bytes.append(UInt8(ascii: ",")) }
        atLineStart = false
    }

    /// Text from outside, guarded as `CSV.text` guards it (which hands most cells back as they are).
    mutating func text(_ value: String) {
        separate()
        bytes += CSV.text(value).utf8
    }

    /// Bytes Tally wrote itself (numbers, fixed words).
    mutating func raw(_ value: String) {
        separate()
        bytes += value.utf8
    }

    mutating func integer(_ value: Int64) {
        separate()
        JSONWriter.appendInteger(value, to: &bytes)
    }

    mutating func money(_ value: Money) {
        separate()
        value.appendExact(to: &bytes, minimumPlaces: 6)
    }

    mutating func time(_ milliseconds: Int64?) {
        separate()
        if let milliseconds { CSV.appendTime(milliseconds, to: &bytes) }
    }

    mutating func endRow() {
        bytes.append(0x0D)
        bytes.append(0x0A)
        atLineStart = true
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
}
