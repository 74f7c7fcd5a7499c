import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// One kind of waste the audit looks for (`docs/waste-and-reallocation.md`).
public enum WasteKind: String, Sendable, CaseIterable, Comparable {
    /// The same prompt (`prompt_hash`), model and team again within `audit.duplicate_window` of a successful call.
    case exactDuplicate = "exact_duplicate"
    /// A prompt whose SimHash is within `audit.near_duplicates.max_distance` bits of an earlier one in the window.
    case nearDuplicate = "near_duplicate"
    /// At least `audit.retry_loop.min_repeats` identical prompts from one key within `audit.retry_loop.within`.
    case retryLoop = "retry_loop"
    /// A key over `audit.runaway`'s request or spend rate.
    case runaway

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// One cluster of repeated prompts, one retry loop, or one runaway episode.
public struct WasteFinding: Sendable, Equatable {
    public var kind: WasteKind
    /// What the finding is about: the prompt hash's first 12 hex digits for duplicates, the key for loops and runaways.
    public var subject: String
    /// The model (duplicates; empty where calls used several).
    public var model: String
    /// The team the calls were attributed to.
    public var team: String
    /// Keys and users involved, sorted.
    public var keys: [String]
    public var users: [String]
    public var firstSeen: Int64
    public var lastSeen: Int64
    /// Every call in the cluster, loop or episode.
    public var calls: Int
    /// The calls that repeat an earlier one (duplicates, loops); for runaways, the calls over the limit's window.
    public var repeats: Int
    /// Calls that failed upstream or were aborted.
    public var errors: Int
    /// The cost of the repeats (duplicates, loops) or of the whole episode (runaways).
    public var cost: Money
    /// Whether `cost` counts toward the period's waste total: exact duplicates always, near duplicates when the config
    /// says so. Loops and runaways are reported with their cost but not added, since their repeats are mostly counted
    /// as duplicates already.
    public var countsAsWaste: Bool
    /// A line for people: `peak 1,204 requests/min, 212.40 USD/h`.
    public var detail: String

    public init(kind: WasteKind, subject: String, model: String, team: String, keys: [String], users: [String], firstSeen: Int64,
                lastSeen: Int64, calls: Int, repeats: Int, errors: Int, cost: Money, countsAsWaste: Bool, detail: String) {
        self.kind = kind
        self.subject = subject
        self.model = model
        self.team = team
        self.keys = keys
        self.users = users
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.calls = calls
        self.repeats = repeats
        self.errors = errors
        self.cost = cost
        self.countsAsWaste = countsAsWaste
        self.detail = detail
    }
}

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
        case .retryLoop, .runaway: false
        }
    }

    /// How far before a period the scan starts, so that a window open at the period's start is seen whole.
    var lookBack: Int64 { max(duplicateWindow, retryWithin, 3_600_000) }
}
