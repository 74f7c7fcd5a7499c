import TallyCore

/// One cluster of repeated prompts, one retry loop, or one runaway episode: the scan makes it, the ledger's `waste`
/// rows keep it, the audit prints the new ones, and waste.csv and the HTML page list them.
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
    public var calls: Int64
    /// The calls that repeat an earlier one (duplicates, loops); for runaways, the calls over the limit's window.
    public var repeats: Int64
    /// Calls that failed upstream or were aborted.
    public var errors: Int64
    /// The cost of the repeats (duplicates, loops) or of the whole episode (runaways).
    public var cost: Money
    /// Whether `cost` counts toward the period's waste total: exact duplicates always, near duplicates when the config
    /// says so. Loops and runaways are reported with their cost but not added, since their repeats are mostly counted
    /// as duplicates already.
    public var countsAsWaste: Bool
    /// A line for people: `peak 1,204 requests/min, 212.40 USD/h`.
    public var detail: String

    public init(
        kind: WasteKind, subject: String, model: String, team: String, keys: [String], users: [String], firstSeen: Int64,
        lastSeen: Int64, calls: Int64, repeats: Int64, errors: Int64, cost: Money, countsAsWaste: Bool, detail: String
    ) {
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
