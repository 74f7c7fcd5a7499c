import TallyCore
import TallyLedger
import UsageLog

/// A span of local days to report on, both ends included, in the audit's timezone.
///
/// Written as a month `2026-11`, an ISO week `2026-W47` (Monday to Sunday), a day `2026-11-22`, or with
/// `--from DATE --to DATE` (both days included).
public struct Period: Sendable, Equatable, CustomStringConvertible {
    /// First local day (days since 1970-01-01).
    public var firstDay: Int
    /// Last local day, included.
    public var lastDay: Int
    /// How the period was named, for headings and file names.
    public var label: String

    public init(firstDay: Int, lastDay: Int, label: String) {
        self.firstDay = firstDay
        self.lastDay = lastDay
        self.label = label
    }

    public var description: String { label }

    /// Parses `2026-11`, `2026-W47` or `2026-11-22`.
    public init(parsing text: String) throws(AuditError) {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count, !range.isEmpty,
                range.allSatisfy({ bytes[$0] >= 0x30 && bytes[$0] <= 0x39 })
            else { return nil }
            return range.reduce(0) { $0 * 10 + Int(bytes[$1] - 0x30) }
        }
        if let day = Timestamp.parseDate(text) {
            self.init(firstDay: day, lastDay: day, label: text)
            return
        }
        if bytes.count == 7, bytes[4] == UInt8(ascii: "-"), let year = number(0..<4), let month = number(5..<7), (1...12).contains(month) {
            let first = Timestamp.daysFromCivil(year: year, month: month, day: 1)
            let next =
                month == 12
                ? Timestamp.daysFromCivil(year: year + 1, month: 1, day: 1)
                : Timestamp.daysFromCivil(year: year, month: month + 1, day: 1)
            self.init(firstDay: first, lastDay: next - 1, label: text)
            return
        }
        if bytes.count == 8, bytes[4] == UInt8(ascii: "-"), bytes[5] == UInt8(ascii: "W") || bytes[5] == UInt8(ascii: "w"),
            let year = number(0..<4), let week = number(6..<8), week >= 1, week <= Self.isoWeeks(in: year)
        {
            let monday = Self.isoWeekOneMonday(year) + (week - 1) * 7
            self.init(firstDay: monday, lastDay: monday + 6, label: "\(year)-W\(week < 10 ? "0" : "")\(week)")
            return
        }
        throw AuditError(.usage, "'\(text)' is not a period: use a month (2026-11), an ISO week (2026-W47) or a day (2026-11-22)")
    }

    /// `--from DATE --to DATE`, both days included.
    public init(from: String, to: String) throws(AuditError) {
        guard let first = Timestamp.parseDate(from) else { throw AuditError(.usage, "--from '\(from)' is not a date (YYYY-MM-DD)") }
        guard let last = Timestamp.parseDate(to) else { throw AuditError(.usage, "--to '\(to)' is not a date (YYYY-MM-DD)") }
        guard first <= last else { throw AuditError(.usage, "--from \(from) is after --to \(to)") }
        self.init(firstDay: first, lastDay: last, label: "\(from)..\(to)")
    }

    /// The calendar month containing local day `day`.
    public static func month(containing day: Int) -> Period {
        let date = Timestamp.civilFromDays(day)
        let label = "\(date.year)-\(date.month < 10 ? "0" : "")\(date.month)"
        return try! Period(parsing: label)
    }

    /// Day number of 1970-01-01 is a Thursday; ISO weekday 1 = Monday.
    static func isoWeekday(_ day: Int) -> Int { ((day % 7 + 7) % 7 + 3) % 7 + 1 }

    /// The Monday of ISO week 1: the week holding the year's first Thursday.
    static func isoWeekOneMonday(_ year: Int) -> Int {
        let jan4 = Timestamp.daysFromCivil(year: year, month: 1, day: 4)
        return jan4 - (isoWeekday(jan4) - 1)
    }

    static func isoWeeks(in year: Int) -> Int {
        (isoWeekOneMonday(year + 1) - isoWeekOneMonday(year)) / 7
    }

    /// `2026-W47` for the ISO week holding local day `day`.
    public static func isoWeekLabel(_ day: Int) -> String {
        var year = Timestamp.civilFromDays(day).year
        if day >= isoWeekOneMonday(year + 1) { year += 1 } else if day < isoWeekOneMonday(year) { year -= 1 }
        let week = (day - isoWeekOneMonday(year)) / 7 + 1
        return "\(year)-W\(week < 10 ? "0" : "")\(week)"
    }
}
