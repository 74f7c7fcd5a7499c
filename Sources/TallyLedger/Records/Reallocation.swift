import TallyCore

/// A proposed move of unused user budget from one member of a team to another, for the current period.
public struct ReallocationProposal: Sendable, Equatable {
    /// `2026-11:alice:bob`: the period, who gives, who receives. Stable while the proposal stands, so
    /// `tally realloc approve` can name it.
    public var id: String
    public var periodLabel: String
    public var team: String
    public var from: String
    public var to: String
    public var amount: Money
    public var reason: String

    public init(id: String, periodLabel: String, team: String, from: String, to: String, amount: Money, reason: String) {
        self.id = id
        self.periodLabel = periodLabel
        self.team = team
        self.from = from
        self.to = to
        self.amount = amount
        self.reason = reason
    }
}

/// An approved move, by a person (`tally realloc approve`) or by the audit (`audit.auto_approve`).
public struct ReallocationApproval: Sendable, Equatable {
    public var proposal: String
    public var periodLabel: String
    public var team: String
    public var from: String
    public var to: String
    public var amount: Money
    public var by: String
    public var at: Int64

    public init(proposal: String, periodLabel: String, team: String, from: String, to: String, amount: Money, by: String, at: Int64) {
        self.proposal = proposal
        self.periodLabel = periodLabel
        self.team = team
        self.from = from
        self.to = to
        self.amount = amount
        self.by = by
        self.at = at
    }
}

/// What a team pool did for one member in one period.
public struct PoolMove: Sendable, Equatable {
    public enum Kind: String, Sendable { case release, draw }
    public var periodLabel: String
    public var team: String
    public var user: String
    public var kind: Kind
    /// Days away (releases); 0 for draws.
    public var days: Int
    public var amount: Money

    public init(periodLabel: String, team: String, user: String, kind: Kind, days: Int, amount: Money) {
        self.periodLabel = periodLabel
        self.team = team
        self.user = user
        self.kind = kind
        self.days = days
        self.amount = amount
    }
}
