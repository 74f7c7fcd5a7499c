import TallyCore

/// One budget's state in its current period, at the audit's clock: what budgets, alerts and the revocation list are
/// decided on, and what budgets.csv and the HTML page show.
public struct BudgetStatus: Sendable, Equatable {
    /// How a budget stands, as reports show it.
    public enum State: String, Sendable {
        /// Under its limit and not projected to reach it.
        case ok
        /// Projected to reach its limit before the period ends.
        case atRisk = "at_risk"
        /// Reached its limit, but the team pool covered the overrun.
        case coveredByPool = "covered_by_pool"
        /// A soft budget at or over its limit: alerts only.
        case over
        /// A hard budget at or over its limit: its keys are revoked (priority keys excepted).
        case breached
    }

    public var scope: BudgetScope
    public var id: String
    public var budget: Budget
    /// The current period's first and last local day, and its label (`2026-11`, `2026-W47`, `2026-11-22`).
    public var firstDay: Int
    public var lastDay: Int
    public var periodLabel: String
    /// The period's first millisecond.
    public var periodStart: Int64
    /// The first millisecond after the period: when a breach's revocation ends.
    public var periodEnd: Int64
    /// Spend in the period up to the audit's clock, unpriced calls' estimates included.
    public var spend: Money
    /// The part of `spend` that is unpriced calls' conservative estimates rather than prices (`docs/pricing.md`).
    public var estimated: Money
    /// User budgets only (`Reallocation`): released to the team pool for days away, drawn from the pool, and moved in
    /// or out by approved reallocations. All zero elsewhere.
    public var released = Money.zero
    public var drawn = Money.zero
    public var movedIn = Money.zero
    public var movedOut = Money.zero
    /// Whether the team pool covered this member's whole overrun: then reaching the limit is not a breach.
    public var coveredByPool = false
    /// Spend projected to the period's end at the pace so far, when a report has projected it.
    public var projected: Money?

    public init(
        scope: BudgetScope, id: String, budget: Budget, firstDay: Int, lastDay: Int, periodLabel: String, periodStart: Int64,
        periodEnd: Int64, spend: Money, estimated: Money = .zero, released: Money = .zero, drawn: Money = .zero, movedIn: Money = .zero,
        movedOut: Money = .zero, coveredByPool: Bool = false, projected: Money? = nil
    ) {
        self.scope = scope
        self.id = id
        self.budget = budget
        self.firstDay = firstDay
        self.lastDay = lastDay
        self.periodLabel = periodLabel
        self.periodStart = periodStart
        self.periodEnd = periodEnd
        self.spend = spend
        self.estimated = estimated
        self.released = released
        self.drawn = drawn
        self.movedIn = movedIn
        self.movedOut = movedOut
        self.coveredByPool = coveredByPool
        self.projected = projected
    }

    /// The limit in force: the config's, less what was released or moved out, plus what was drawn or moved in.
    public var limit: Money { budget.limit - released - movedOut + movedIn + drawn }

    /// At or above the limit in force, unless the team pool covered the overrun.
    public var isBreached: Bool { coveredByPool ? spend > limit : spend >= limit }

    /// Spend as a percentage of the limit in force, rounded down (`104%`).
    public var percent: Int128 { limit.picos > 0 ? spend.picos * 100 / limit.picos : (spend.picos > 0 ? 100 : 0) }

    /// `user alice`.
    public var subject: String { "\(scope.rawValue) \(id)" }

    /// Where it stands: over its limit (breached if hard), covered by the pool, projected to reach it, or fine.
    public var state: State {
        if isBreached { return budget.hard ? .breached : .over }
        if coveredByPool && spend >= limit { return .coveredByPool }
        if (projected ?? spend) >= limit { return .atRisk }
        return .ok
    }

    /// Spend over the limit in force, as a fraction (0.8312); 0 for a zero limit with no spend.
    public var utilisation: Double {
        guard limit.picos > 0 else { return spend.picos > 0 ? 1 : 0 }
        return Double(spend.picos) / Double(limit.picos)
    }
}
