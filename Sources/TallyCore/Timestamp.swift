#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Civil-calendar arithmetic in UTC for RFC 3339 timestamps held as milliseconds since the Unix epoch.
///
/// The log writes `ts` with millisecond precision in UTC (`2026-11-22T15:43:01.123Z`); readers accept any RFC 3339
/// offset and any number of fraction digits (digits past milliseconds are dropped, rounding toward the past).
public enum Timestamp {
    /// The wall clock now, in milliseconds since the epoch.
    public static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date of a day number since 1970-01-01 (`civil_from_days`).
    public static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Formats `milliseconds` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    public static func format(milliseconds: Int64) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(24)
        append(milliseconds: milliseconds, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` to a byte buffer.
    public static func append(milliseconds: Int64, to out: inout [UInt8]) {
        appendUTC(milliseconds: milliseconds, compact: false, to: &out)
    }

    /// Formats as the compact UTC form used in segment names: `yyyyMMdd'T'HHmmss'Z'`.
    public static func formatCompact(milliseconds: Int64) -> String {
        var out: [UInt8] = []
        appendUTC(milliseconds: milliseconds, compact: true, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, or with `compact` `YYYYMMDDTHHMMSSZ` (no separators, no milliseconds).
    private static func appendUTC(milliseconds: Int64, compact: Bool, to out: inout [UInt8]) {
        let (seconds, millis) = floorDivide(milliseconds, 1000)
        let (days, secondOfDay) = floorDivide(seconds, 86_400)
        appendDate(days: Int(days), separator: compact ? nil : UInt8(ascii: "-"), to: &out)
        out.append(UInt8(ascii: "T"))
        appendDigits(Int(secondOfDay / 3600), width: 2, to: &out)
        if !compact { out.append(UInt8(ascii: ":")) }
        appendDigits(Int(secondOfDay / 60 % 60), width: 2, to: &out)
        if !compact { out.append(UInt8(ascii: ":")) }
        appendDigits(Int(secondOfDay % 60), width: 2, to: &out)
        if !compact {
            out.append(UInt8(ascii: "."))
            appendDigits(Int(millis), width: 3, to: &out)
        }
        out.append(UInt8(ascii: "Z"))
    }

    private static func appendDate(days: Int, separator: UInt8?, to out: inout [UInt8]) {
        let date = civilFromDays(days)
        appendDigits(date.year, width: 4, to: &out)
        if let separator { out.append(separator) }
        appendDigits(date.month, width: 2, to: &out)
        if let separator { out.append(separator) }
        appendDigits(date.day, width: 2, to: &out)
    }

    /// Parses an RFC 3339 date-time (`2026-11-22T15:43:01.123Z`, `2026-11-22T16:43:01+01:00`) to milliseconds since the epoch.
    /// Returns nil when the text is not one.
    public static func parse(_ text: some StringProtocol) -> Int64? {
        var string = String(text)
        return string.withUTF8 { parse(bytes: $0) }
    }

    /// Parses an RFC 3339 date-time from UTF-8 bytes.
    public static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard b.count >= 20 else { return nil }
        func digits(_ at: Int, _ count: Int) -> Int? { parseDigits(b, at: at, count: count) }
        guard let year = digits(0, 4), b[4] == UInt8(ascii: "-"), let month = digits(5, 2), b[7] == UInt8(ascii: "-"),
            let day = digits(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == UInt8(ascii: " "),
            let hour = digits(11, 2), b[13] == UInt8(ascii: ":"), let minute = digits(14, 2), b[16] == UInt8(ascii: ":"),
            let second = digits(17, 2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year: year, month: month),
            hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var i = 19
        var millis = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var fractionDigits = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if fractionDigits < 3 { millis = millis * 10 + Int(b[i] - 0x30) }
                fractionDigits += 1
                i += 1
            }
            guard fractionDigits > 0 else { return nil }
            for _ in min(fractionDigits, 3)..<3 { millis *= 10 }
        }
        guard i < b.count else { return nil }
        var offsetMinutes = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            guard i + 6 <= b.count, let oh = digits(i + 1, 2), b[i + 3] == UInt8(ascii: ":"), let om = digits(i + 4, 2),
                oh <= 23, om <= 59
            else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
            i += 6
        default:
            return nil
        }
        guard i == b.count else { return nil }
        let days = Int64(daysFromCivil(year: year, month: month, day: day))
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - Int64(offsetMinutes * 60)
        return seconds * 1000 + Int64(millis)
    }

    /// Parses a calendar date `YYYY-MM-DD` to its day number since 1970-01-01.
    public static func parseDate(_ text: some StringProtocol) -> Int? {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { b -> Int? in
            guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
                let year = parseDigits(b, at: 0, count: 4), let month = parseDigits(b, at: 5, count: 2),
                let day = parseDigits(b, at: 8, count: 2), (1...12).contains(month),
                day >= 1, day <= daysInMonth(year: year, month: month)
            else { return nil }
            return daysFromCivil(year: year, month: month, day: day)
        }
    }

    /// The value of `count` ASCII digits at `at`, or nil if any is not a digit.
    private static func parseDigits(_ b: UnsafeBufferPointer<UInt8>, at: Int, count: Int) -> Int? {
        var value = 0
        for i in at..<(at + count) {
            guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
            value = value * 10 + Int(b[i] - 0x30)
        }
        return value
    }

    /// Formats a day number since 1970-01-01 as `YYYY-MM-DD`.
    public static func formatDate(days: Int) -> String {
        var out: [UInt8] = []
        appendDate(days: days, separator: UInt8(ascii: "-"), to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    static func appendDigits(_ value: Int, width: Int, to out: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest / divisor % 10))
            rest %= divisor
            divisor /= 10
        }
    }

    /// Quotient rounded toward negative infinity, and the matching non-negative remainder.
    @inline(__always)
    public static func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let q = a / b
        let r = a % b
        return r < 0 ? (q - 1, r + b) : (q, r)
    }
}
