import Foundation
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// Local days in the audit's timezone: which day a call fell on, and when a day starts.
///
/// Days are numbered like `Timestamp.daysFromCivil` (days since 1970-01-01), but of the local date. Offsets are
/// looked up once per quarter hour of UTC (every zone's offset changes on a quarter-hour boundary), so a run of
/// calls in time order costs one lookup per 15 minutes.
public struct LocalCalendar: Sendable {
    public let timezone: TimeZone
    private var cachedBucket: Int64 = .min
    private var cachedOffsetMs: Int64 = 0

    /// Fails for a name that is not an IANA timezone.
    public init?(identifier: String) {
        guard let zone = TimeZone(identifier: identifier) else { return nil }
        timezone = zone
    }

    /// The calendar of `audit.timezone`; a config error when the name is not an IANA zone.
    public static func audit(_ config: Config) throws(AuditError) -> LocalCalendar {
        guard let calendar = LocalCalendar(identifier: config.audit.timezone) else {
            throw AuditError(.config, "'\(config.audit.timezone)' is not an IANA timezone (audit.timezone)")
        }
        return calendar
    }

    /// The zone's offset from UTC at `milliseconds`, in milliseconds.
    public mutating func offset(at milliseconds: Int64) -> Int64 {
        let bucket = Timestamp.floorDivide(milliseconds, 900_000).0
        if bucket != cachedBucket {
            cachedBucket = bucket
            let date = Date(timeIntervalSince1970: Double(bucket * 900))
            cachedOffsetMs = Int64(timezone.secondsFromGMT(for: date)) * 1000
        }
        return cachedOffsetMs
    }

    /// The local day `milliseconds` falls on.
    public mutating func day(of milliseconds: Int64) -> Int {
        Int(Timestamp.floorDivide(milliseconds + offset(at: milliseconds), 86_400_000).0)
    }

    /// The first millisecond of local day `day` (the first instant whose local date is that day).
    public mutating func start(ofDay day: Int) -> Int64 {
        let midnight = Int64(day) * 86_400_000
        var guess = midnight - offset(at: midnight)
        guess = midnight - offset(at: guess)
        // Where a clock change skips midnight, the day starts at the first instant after the gap.
        while self.day(of: guess) < day { guess += 900_000 }
        while self.day(of: guess - 1) >= day { guess -= 900_000 }
        return guess
    }
}
