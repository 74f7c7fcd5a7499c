import TallyCore

/// `waste.csv`: every duplicate cluster, retry loop and runaway episode, costliest first within each kind. A busy
/// month's file is a hundred megabytes: it is written a piece of about a megabyte at a time, and never whole in memory.
public struct WasteCSV: ReportFile {
    public let name = "waste.csv"

    public init() {}

    public func write(_ report: PeriodReport, to write: ([UInt8]) throws(FileIOError) -> Void) throws(FileIOError) {
        let piece = 1 << 20
        var out = CSVBuffer(capacity: piece + (piece >> 2))
        for name in [
            "kind", "subject", "model", "team", "keys", "users", "first_seen", "last_seen", "calls", "repeats", "errors",
            "cost", "currency", "counts_as_waste", "detail",
        ] { out.raw(name) }
        out.endRow()
        let currency = report.currency
        try report.waste.forEach { (w: WasteFinding) throws(FileIOError) in
            out.raw(w.kind.rawValue)
            out.text(w.subject)
            out.text(w.model)
            out.text(w.team)
            out.text(w.keys.count == 1 ? w.keys[0] : w.keys.joined(separator: " "))
            out.text(w.users.count == 1 ? w.users[0] : w.users.joined(separator: " "))
            out.time(w.firstSeen)
            out.time(w.lastSeen)
            out.integer(w.calls)
            out.integer(w.repeats)
            out.integer(w.errors)
            out.money(w.cost)
            out.text(currency)
            out.raw(w.countsAsWaste ? "true" : "false")
            out.text(w.detail)
            out.endRow()
            if out.bytes.count >= piece {
                try write(out.bytes)
                out.bytes.removeAll(keepingCapacity: true)
            }
        }
        try write(out.bytes)
    }
}
