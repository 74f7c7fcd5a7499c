import TallyCore

/// Everything one period's report files say (`docs/reports.md`), as plain values: the auditor fills it from the
/// ledger, the writers (`ReportFiles`, `HTMLReport`) turn it into CSV and HTML without a database.
public struct PeriodReport: Sendable, Equatable {
    /// `2026-11`.
    public var period: String
    /// First and last local day, `YYYY-MM-DD`, in `timezone`.
    public var firstDay: String
    public var lastDay: String
    /// The period's first millisecond and the first millisecond after it (UTC).
    public var start: Int64
    public var end: Int64
    public var timezone: String
    public var currency: String
    /// The organisations' display names, for the title.
    public var organisations: [String]
    /// The clock the figures were computed at; for a closed period, its end.
    public var asOf: Int64
    /// A closed period's last report (the period-close snapshot).
    public var isFinal: Bool
    /// Calls of this period ingested after its final report was first written.
    public var late: LateEvents?
    /// Calls of this (closed) period priced again after its final report was first written.
    public var correction: PriceCorrectionNote?
    /// The previous period's label and total, and its spend over as many days as this period has run.
    public var previous: PreviousPeriod?
    /// One row per day × org × team × project × user × key × provider × model, in that order.
    public var attribution: [AttributionRow]
    public var budgets: [BudgetStatus]
    public var alerts: [Alert]
    public var breaches: [BreachRow]
    public var revocations: [RevocationRow]
    public var waste: WasteFindings
    public var reallocation: [ReallocationRow]
    public var unpriced: [UnpricedRow]
    /// Calls priced as far as their price allows: a served tier, one-hour cache writes or web searches it has no price
    /// for (`price-gaps.csv`).
    public var priceGaps: [PriceGapRow] = []
    public var quarantine: [QuarantineRow]
    public var dataQuality: DataQuality
    /// Display names of providers by config name (`openai` → `OpenAI`), for FOCUS.
    public var providerNames: [String: String]

    public init(
        period: String, firstDay: String, lastDay: String, start: Int64, end: Int64, timezone: String, currency: String,
        organisations: [String] = [], asOf: Int64, isFinal: Bool = false, late: LateEvents? = nil, previous: PreviousPeriod? = nil,
        attribution: [AttributionRow] = [], budgets: [BudgetStatus] = [], alerts: [Alert] = [], breaches: [BreachRow] = [],
        revocations: [RevocationRow] = [], waste: WasteFindings = [], reallocation: [ReallocationRow] = [],
        unpriced: [UnpricedRow] = [], quarantine: [QuarantineRow] = [], dataQuality: DataQuality = DataQuality(),
        providerNames: [String: String] = [:]
    ) {
        self.period = period
        self.firstDay = firstDay
        self.lastDay = lastDay
        self.start = start
        self.end = end
        self.timezone = timezone
        self.currency = currency
        self.organisations = organisations
        self.asOf = asOf
        self.isFinal = isFinal
        self.late = late
        self.previous = previous
        self.attribution = attribution
        self.budgets = budgets
        self.alerts = alerts
        self.breaches = breaches
        self.revocations = revocations
        self.waste = waste
        self.reallocation = reallocation
        self.unpriced = unpriced
        self.quarantine = quarantine
        self.dataQuality = dataQuality
        self.providerNames = providerNames
    }

    /// The sum of `attribution`'s cost: what `attribution.csv` adds up to and the HTML report shows.
    public var total: Money { attribution.reduce(.zero) { $0 + $1.cost } }

    /// How far through the period the figures run, from 0 to 1 (1 once it has ended).
    public var elapsed: Double {
        guard end > start else { return 1 }
        return min(1, max(0, Double(min(asOf, end) - start) / Double(end - start)))
    }

    /// Spend projected to the period's end at the pace so far (the total itself once the period has ended).
    public var projectedTotal: Money {
        let through = min(asOf, end)
        guard through < end, through > start else { return total }
        return Money(picos: total.picos * Int128(end - start) / Int128(through - start))
    }

    /// Waste that counts as waste (exact duplicates, retry loops, runaways; near duplicates when configured).
    public var wasteTotal: Money { waste.total }
}

/// Calls that arrived after a period's final report.
public struct LateEvents: Sendable, Equatable {
    public var requests: Int64
    public var cost: Money
    /// When the audit first found them.
    public var foundAt: Int64
    public init(requests: Int64, cost: Money, foundAt: Int64) {
        self.requests = requests
        self.cost = cost
        self.foundAt = foundAt
    }
}

/// A closed period's calls priced again after its final report: a price appeared or was corrected (`docs/pricing.md`).
public struct PriceCorrectionNote: Sendable, Equatable {
    public var calls: Int64
    /// New cost − old cost of those calls, exactly: the report's total already includes it.
    public var change: Money
    /// When the latest correction was made.
    public var at: Int64
    /// What was re-priced, one line per model and audit, as journalled.
    public var details: [String]

    public init(calls: Int64, change: Money, at: Int64, details: [String]) {
        self.calls = calls
        self.change = change
        self.at = at
        self.details = details
    }
}

/// The period before, for comparison.
public struct PreviousPeriod: Sendable, Equatable {
    public var period: String
    public var total: Money
    /// Its spend over its first as many days as this period has run (the whole of it once this one has ended).
    public var toSamePoint: Money
    public init(period: String, total: Money, toSamePoint: Money) {
        self.period = period
        self.total = total
        self.toSamePoint = toSamePoint
    }
}

/// One line of `attribution.csv`: a day's calls by one key to one model.
public struct AttributionRow: Sendable, Equatable {
    /// Local day, `YYYY-MM-DD`, and its first millisecond and the first after it (UTC).
    public var date: String
    public var dayStart: Int64
    public var dayEnd: Int64
    public var org: String
    public var team: String
    public var project: String
    public var user: String
    public var key: String
    public var provider: String
    public var model: String
    public var requests: Int64
    public var tokens: TokenCounts
    /// The priced calls' cost (unpriced calls add nothing).
    public var cost: Money
    /// Calls with usage but no price for their model.
    public var unpricedRequests: Int64
    /// The parts of the row served on a reported tier or priced with notes (long context, a gap, an estimate), each
    /// with its own sums; the row's own sums include them. FOCUS shows them as rows of their own.
    public var splits: [PricingSplit] = []

    public init(
        date: String, dayStart: Int64, dayEnd: Int64, org: String, team: String, project: String, user: String, key: String,
        provider: String, model: String, requests: Int64 = 0, tokens: TokenCounts = .zero, cost: Money = .zero,
        unpricedRequests: Int64 = 0
    ) {
        self.date = date
        self.dayStart = dayStart
        self.dayEnd = dayEnd
        self.org = org
        self.team = team
        self.project = project
        self.user = user
        self.key = key
        self.provider = provider
        self.model = model
        self.requests = requests
        self.tokens = tokens
        self.cost = cost
        self.unpricedRequests = unpricedRequests
    }

    /// Every call of the row is unpriced: its cost is unknown, not zero.
    public var isUnpriced: Bool { unpricedRequests > 0 && unpricedRequests == requests }
}

/// A budget that reached 100% in the period, and what it did to keys.
public struct BreachRow: Sendable, Equatable {
    public var scope: String
    public var id: String
    public var budgetPeriod: String
    public var periodLabel: String
    /// When spend reached the limit, when an alert recorded it.
    public var crossedAt: Int64?
    public var spent: Money
    public var limit: Money
    public var hard: Bool
    /// `revoked`, `override` (only priority keys), `alert_only` (a soft budget) or `covered_by_pool`.
    public var action: String
    /// Keys revoked for it, and priority keys left running (the overrides).
    public var revokedKeys: [String]
    public var overrideKeys: [String]

    public init(
        scope: String, id: String, budgetPeriod: String, periodLabel: String, crossedAt: Int64?, spent: Money, limit: Money,
        hard: Bool, action: String, revokedKeys: [String], overrideKeys: [String]
    ) {
        self.scope = scope
        self.id = id
        self.budgetPeriod = budgetPeriod
        self.periodLabel = periodLabel
        self.crossedAt = crossedAt
        self.spent = spent
        self.limit = limit
        self.hard = hard
        self.action = action
        self.revokedKeys = revokedKeys
        self.overrideKeys = overrideKeys
    }
}

/// A key revoked or restored in the period (from the journal), or revoked when the report was made.
public struct RevocationRow: Sendable, Equatable {
    /// When it happened; nil for `in_force` rows.
    public var at: Int64?
    public var key: String
    /// `revoked`, `restored` or `in_force`.
    public var action: String
    public var reason: String
    public var until: Int64?

    public init(at: Int64?, key: String, action: String, reason: String, until: Int64?) {
        self.at = at
        self.key = key
        self.action = action
        self.reason = reason
        self.until = until
    }
}

/// The period's waste findings as the report files need them: totals by kind and the costliest few for the HTML page,
/// and every row, in order, for waste.csv. A busy month has hundreds of thousands of rows, so they need not be held in
/// memory: a `WasteFindingSource` can hand them over while waste.csv is written.
public struct WasteFindings: Sendable, Equatable, ExpressibleByArrayLiteral {
    /// The findings of one kind.
    public struct KindTotal: Sendable, Equatable {
        public var findings: Int64
        public var cost: Money
        /// Whether their cost is in the waste total.
        public var countsAsWaste: Bool
        public init(findings: Int64, cost: Money, countsAsWaste: Bool) {
            self.findings = findings
            self.cost = cost
            self.countsAsWaste = countsAsWaste
        }
    }

    /// How many findings the HTML page lists.
    public static let costliestShown = 15

    /// By kind (`exact_duplicate`…); kinds without findings are absent.
    public private(set) var kinds: [WasteKind: KindTotal]
    /// Up to `costliestShown` findings in `costlier` order.
    public private(set) var costliest: [WasteFinding]
    private let rows: Rows

    private enum Rows: Sendable {
        case memory([WasteFinding])
        case source(any WasteFindingSource)
    }

    /// Totals by kind and the costliest few, gathered one finding at a time. Findings `costlier` finds equal keep the
    /// order they came in.
    public struct Summary: Sendable {
        public private(set) var kinds: [WasteKind: KindTotal] = [:]
        public private(set) var costliest: [WasteFinding] = []

        public init() {}

        /// Counts a finding; `row` is asked for only when the finding may be among the costliest.
        public mutating func add(kind: WasteKind, cost: Money, countsAsWaste: Bool, row: () throws -> WasteFinding) rethrows {
            kinds[kind, default: KindTotal(findings: 0, cost: .zero, countsAsWaste: countsAsWaste)].findings += 1
            kinds[kind]!.cost += cost
            let shown = WasteFindings.costliestShown
            guard costliest.count < shown || cost >= costliest[shown - 1].cost else { return }
            let row = try row()
            guard costliest.count < shown || WasteFindings.costlier(row, costliest[shown - 1]) else { return }
            // After the equally costly ones already kept.
            costliest.insert(row, at: costliest.firstIndex { WasteFindings.costlier(row, $0) } ?? costliest.count)
            if costliest.count > shown { costliest.removeLast() }
        }
    }

    /// Findings held in memory, in waste.csv's order.
    public init(_ rows: [WasteFinding]) {
        var summary = Summary()
        for row in rows { summary.add(kind: row.kind, cost: row.cost, countsAsWaste: row.countsAsWaste) { row } }
        self.init(kinds: summary.kinds, costliest: summary.costliest, rows: .memory(rows))
    }

    public init(arrayLiteral rows: WasteFinding...) { self.init(rows) }

    /// Findings summed by their owner (`kinds`, and `costliest` in `costlier` order, ties in waste.csv's order), whose
    /// rows `source` hands over when they are written.
    public init(kinds: [WasteKind: KindTotal], costliest: [WasteFinding], source: any WasteFindingSource) {
        self.init(kinds: kinds, costliest: costliest, rows: .source(source))
    }

    private init(kinds: [WasteKind: KindTotal], costliest: [WasteFinding], rows: Rows) {
        self.kinds = kinds
        self.costliest = costliest
        self.rows = rows
    }

    /// The order of the HTML page's list: costliest first, then by kind and subject (compared as UTF-8 bytes, as
    /// SQLite compares text), then oldest.
    public static func costlier(_ a: WasteFinding, _ b: WasteFinding) -> Bool {
        if a.cost != b.cost { return a.cost > b.cost }
        if a.kind != b.kind { return a.kind.rawValue.utf8.lexicographicallyPrecedes(b.kind.rawValue.utf8) }
        if a.subject != b.subject { return a.subject.utf8.lexicographicallyPrecedes(b.subject.utf8) }
        return a.firstSeen < b.firstSeen
    }

    /// Where the rows come from, when they are not in memory.
    public var source: (any WasteFindingSource)? {
        if case .source(let source) = rows { source } else { nil }
    }

    /// How many findings there are.
    public var count: Int64 { kinds.values.reduce(0) { $0 + $1.findings } }

    /// The cost of the findings that count as waste.
    public var total: Money { kinds.values.reduce(.zero) { $1.countsAsWaste ? $0 + $1.cost : $0 } }

    /// Every finding in waste.csv's order: by kind (exact and near duplicates, retry loops, runaways), costliest first,
    /// then oldest.
    public func forEach(_ body: (WasteFinding) throws(FileIOError) -> Void) throws(FileIOError) {
        switch rows {
        case .memory(let rows): for row in rows { try body(row) }
        case .source(let source): try source.forEachRow(body)
        }
    }

    /// Equal when they hold the same totals and either the same rows or the same source.
    public static func == (a: WasteFindings, b: WasteFindings) -> Bool {
        guard a.kinds == b.kinds, a.costliest == b.costliest else { return false }
        switch (a.rows, b.rows) {
        case (.memory(let x), .memory(let y)): return x == y
        case (.source(let x), .source(let y)): return x === y
        default: return false
        }
    }
}

/// Where a report's waste rows come from when they are not in memory (the ledger, for the auditor).
public protocol WasteFindingSource: AnyObject, Sendable {
    /// Hands every finding to `body` in waste.csv's order; an error reading them is thrown as an I/O error.
    func forEachRow(_ body: (WasteFinding) throws(FileIOError) -> Void) throws(FileIOError)
}

/// A pool release or draw, a proposal or an approval.
public struct ReallocationRow: Sendable, Equatable {
    /// `release`, `draw`, `proposal` or `approval`.
    public var kind: String
    /// The proposal id, for proposals and approvals.
    public var id: String
    public var team: String
    /// Who gives (`pool` for draws) and who receives (`pool` for releases).
    public var from: String
    public var to: String
    public var amount: Money
    /// Days away, for releases.
    public var days: Int?
    public var at: Int64?
    public var by: String
    public var reason: String

    public init(
        kind: String, id: String = "", team: String, from: String, to: String, amount: Money, days: Int? = nil, at: Int64? = nil,
        by: String = "", reason: String = ""
    ) {
        self.kind = kind
        self.id = id
        self.team = team
        self.from = from
        self.to = to
        self.amount = amount
        self.days = days
        self.at = at
        self.by = by
        self.reason = reason
    }
}

/// The calls of an attribution row that share a served tier and price notes.
public struct PricingSplit: Sendable, Equatable {
    /// The tier the provider reported, as reported; nil when none was.
    public var serviceTier: String?
    public var notes: PriceNotes
    public var requests: Int64
    public var tokens: TokenCounts
    public var cost: Money
    public var unpricedRequests: Int64

    public init(
        serviceTier: String?, notes: PriceNotes, requests: Int64, tokens: TokenCounts, cost: Money, unpricedRequests: Int64 = 0
    ) {
        self.serviceTier = serviceTier
        self.notes = notes
        self.requests = requests
        self.tokens = tokens
        self.cost = cost
        self.unpricedRequests = unpricedRequests
    }
}

/// Calls of one provider, model and served tier that needed a price their entry does not have.
public struct PriceGapRow: Sendable, Equatable {
    /// What was missing, as `price-gaps.csv` names it.
    public enum Gap: String, Sendable, CaseIterable {
        /// The served tier: the calls were priced at the standard rates.
        case serviceTier = "service_tier"
        /// One-hour cache writes: priced at the five-minute cache-write rate.
        case cacheWrite1h = "cache_write_1h"
        /// Web searches: not in the cost.
        case webSearch = "web_search"

        public var note: PriceNotes {
            switch self {
            case .serviceTier: .tierUnpriced
            case .cacheWrite1h: .cacheWrite1hUnpriced
            case .webSearch: .webSearchUnpriced
            }
        }

        /// What the quantity counts.
        public var unit: String { self == .webSearch ? "requests" : "tokens" }

        /// How the calls were priced instead.
        public var pricedAs: String {
            switch self {
            case .serviceTier: "standard tier rates"
            case .cacheWrite1h: "five-minute cache-write rate"
            case .webSearch: "not in the cost"
            }
        }
    }

    public var provider: String
    public var model: String
    public var serviceTier: String?
    public var gap: Gap
    public var requests: Int64
    /// Tokens (all input and output for a tier; the one-hour writes) or web searches.
    public var quantity: Int64

    public init(provider: String, model: String, serviceTier: String?, gap: Gap, requests: Int64, quantity: Int64) {
        self.provider = provider
        self.model = model
        self.serviceTier = serviceTier
        self.gap = gap
        self.requests = requests
        self.quantity = quantity
    }
}

/// A model with calls that carried usage but had no price.
public struct UnpricedRow: Sendable, Equatable {
    public var provider: String
    public var model: String
    public var requests: Int64
    public var tokens: TokenCounts

    public init(provider: String, model: String, requests: Int64, tokens: TokenCounts) {
        self.provider = provider
        self.model = model
        self.requests = requests
        self.tokens = tokens
    }
}

/// A log line the ingest set aside.
public struct QuarantineRow: Sendable, Equatable {
    /// When the audit that found it ran.
    public var at: Int64
    public var segment: String
    public var line: Int64
    public var kind: String
    public var reason: String
    public var length: Int64
    /// The time the line's data is from (its `ts` where readable, else its segment's opening time): the report it
    /// belongs to.
    public var ts: Int64

    public init(at: Int64, segment: String, line: Int64, kind: String, reason: String, length: Int64, ts: Int64) {
        self.at = at
        self.segment = segment
        self.line = line
        self.kind = kind
        self.reason = reason
        self.length = length
        self.ts = ts
    }
}

/// What the figures may be missing.
public struct DataQuality: Sendable, Equatable {
    /// Segments found damaged by audits in the period: path and what was wrong.
    public var damagedSegments: [DamagedSegment]
    /// Calls with a key the config does not list, and their cost.
    public var unknownKeyRequests: Int64
    public var unknownKeyCost: Money
    /// Calls the collector refused, and calls that failed upstream or were aborted.
    public var rejectedRequests: Int64
    public var failedRequests: Int64
    /// Calls the endpoint policy let through to endpoints Tally does not meter (files, batches, images, … where the
    /// config allows them): the provider may bill them, and their cost is not in the spend.
    public var unmetered: [UnmeteredCalls]

    public init(
        damagedSegments: [DamagedSegment] = [], unknownKeyRequests: Int64 = 0, unknownKeyCost: Money = .zero,
        rejectedRequests: Int64 = 0, failedRequests: Int64 = 0, unmetered: [UnmeteredCalls] = []
    ) {
        self.unmetered = unmetered
        self.damagedSegments = damagedSegments
        self.unknownKeyRequests = unknownKeyRequests
        self.unknownKeyCost = unknownKeyCost
        self.rejectedRequests = rejectedRequests
        self.failedRequests = failedRequests
    }
}

/// Calls one key made to endpoints Tally does not meter, through one provider.
public struct UnmeteredCalls: Sendable, Equatable {
    public var team: String
    public var key: String
    public var provider: String
    public var requests: Int64
    /// Of them, answered by the provider with an error status.
    public var failed: Int64

    public init(team: String, key: String, provider: String, requests: Int64, failed: Int64) {
        self.team = team
        self.key = key
        self.provider = provider
        self.requests = requests
        self.failed = failed
    }
}

/// A segment an audit found damaged (truncated gzip, a torn line), and what was wrong.
public struct DamagedSegment: Sendable, Equatable {
    public var path: String
    public var damage: String
    public init(path: String, damage: String) {
        self.path = path
        self.damage = damage
    }
}
