import Report
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// The waste found in one period.
public struct WasteResult: Sendable {
    public var periodLabel: String
    /// Every retry loop and runaway episode, and the costliest `WasteResult.kept` clusters of each duplicate kind, in
    /// the ledger's order; the ledger's `waste` table holds every cluster (`WasteScan.stored`).
    public var findings: [WasteFinding]
    /// Calls examined (those in the period that reached a provider).
    public var calls: Int
    /// Findings and their cost per kind, all of them.
    public var counts: [WasteKind: Int] = [:]
    public var costs: [WasteKind: Money] = [:]
    /// The cost counted as waste.
    public var total = Money.zero

    public static let kept = 100

    public func count(_ kind: WasteKind) -> Int { counts[kind] ?? 0 }
    public func cost(_ kind: WasteKind) -> Money { costs[kind] ?? .zero }
}

/// The thresholds of `audit:` that the scan applies.
struct WasteRules: Sendable {
    var duplicateWindow: Int64
    var nearDistance: Int
    var nearCountsAsWaste: Bool
    var retryMinRepeats: Int
    var retryWithin: Int64
    var runawayRequestsPerMinute: Int
    var runawaySpendPerHour: Int128

    init(_ audit: AuditSettings) {
        duplicateWindow = audit.duplicateWindowMs
        nearDistance = audit.nearDuplicates.maxDistance
        nearCountsAsWaste = audit.nearDuplicates.countAsWaste
        retryMinRepeats = audit.retryLoop.minRepeats
        retryWithin = audit.retryLoop.withinMs
        runawayRequestsPerMinute = audit.runaway.maxRequestsPerMinute
        runawaySpendPerHour = audit.runaway.maxSpendPerHour.picos
    }

    /// Whether a finding of `kind` adds to the waste total: exact duplicates do, near duplicates when the config says
    /// so; retry loops and runaways are reported apart (their repeats are mostly duplicates already).
    func countsAsWaste(_ kind: WasteKind) -> Bool {
        switch kind {
        case .exactDuplicate: true
        case .nearDuplicate: nearCountsAsWaste
        default: false  // retry loops, runaways
        }
    }

    /// How far before a period the scan starts, so that a window open at the period's start is seen whole.
    var lookBack: Int64 { max(duplicateWindow, retryWithin, 3_600_000) }
}
