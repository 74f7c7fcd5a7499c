import Report
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

public struct ReallocationResult: Sendable {
    public var moves: [PoolMove]
    public var proposals: [ReallocationProposal]
    /// Approvals made by this run (`auto_approve`).
    public var approved: [ReallocationApproval]
}

/// Moves budget between the members of a team, for user budgets (`docs/waste-and-reallocation.md`):
///
/// 1. Approved reallocations move limit from one member to another for their period.
/// 2. In a team with `pool: true`, a member's `away` days release their budget pro rata (limit × days away in the
///    period ÷ days in the period, at most what is still unspent) to the team's pool for that period.
/// 3. The pool covers members over their limit, smallest overrun first, until it is empty; what each drew is
///    recorded, and a member fully covered is not in breach, so none of their keys is revoked for it.
/// 4. For every team, each member's spend is projected to the period's end at the pace so far; members who will not
///    use their limit are proposed as donors to members who will run out, largest need first.
///
/// Everything is recomputed each run from the ledger and the config, except approvals, which are decisions.
public enum Reallocation {
    static let cent = Money(picos: Money.scale / 100)

    static func apply(
        to statuses: inout [BudgetStatus], ledger: Ledger, config: Config, asOf: Int64
    ) throws(AuditError) -> ReallocationResult {
        var approved: [ReallocationApproval] = []
        var result = try evaluate(&statuses, ledger: ledger, config: config, asOf: asOf)
        if config.audit.autoApprove, !result.proposals.isEmpty {
            for proposal in result.proposals {
                approved.append(try approve(proposal, by: "tally audit (auto_approve)", at: asOf, ledger: ledger))
            }
            result = try evaluate(&statuses, ledger: ledger, config: config, asOf: asOf)
        }
        result.approved = approved
        try store(result, statuses: statuses, ledger: ledger, asOf: asOf)
        return result
    }

    static func evaluate(
        _ statuses: inout [BudgetStatus], ledger: Ledger, config: Config, asOf: Int64
    ) throws(AuditError) -> ReallocationResult {
        let users = Dictionary(uniqueKeysWithValues: config.users.map { ($0.id, $0) })
        let pools = Set(config.teams.filter(\.pool).map(\.id))
        let labels = Set(statuses.filter { $0.scope == .user }.map(\.periodLabel))
        let approvals = try self.approvals(ledger: ledger).filter { labels.contains($0.periodLabel) }
        var moves: [PoolMove] = []
        // Members' statuses by (team, period), in config order.
        var groups: [String: [Int]] = [:]
        var order: [String] = []
        for index in statuses.indices where statuses[index].scope == .user {
            statuses[index].released = .zero
            statuses[index].drawn = .zero
            statuses[index].movedIn = .zero
            statuses[index].movedOut = .zero
            statuses[index].coveredByPool = false
            guard let user = users[statuses[index].id] else { continue }
            let group = user.team + "\u{0}" + statuses[index].periodLabel
            if groups[group] == nil { order.append(group) }
            groups[group, default: []].append(index)
        }
        for approval in approvals {
            for index in statuses.indices where statuses[index].scope == .user && statuses[index].periodLabel == approval.periodLabel {
                if statuses[index].id == approval.from { statuses[index].movedOut += approval.amount }
                if statuses[index].id == approval.to { statuses[index].movedIn += approval.amount }
            }
        }
        var proposals: [ReallocationProposal] = []
        for group in order {
            let members = groups[group]!
            let team = users[statuses[members[0]].id]!.team
            let label = statuses[members[0]].periodLabel
            if pools.contains(team) {
                // Away days release budget to the pool.
                var pool = Money.zero
                for index in members {
                    let status = statuses[index]
                    let days = awayDays(users[status.id]!, from: status.firstDay, to: status.lastDay)
                    guard days > 0 else { continue }
                    let share = Money(picos: status.budget.limit.picos * Int128(days) / Int128(status.lastDay - status.firstDay + 1))
                    let unspent = max(.zero, status.limit - status.spend)
                    let released = min(share, unspent)
                    guard released > .zero else { continue }
                    statuses[index].released = released
                    pool += released
                    moves.append(PoolMove(periodLabel: label, team: team, user: status.id, kind: .release, days: days, amount: released))
                }
                // The pool covers overruns, smallest first; a member at exactly the limit is covered at no cost.
                let over = members.filter { statuses[$0].spend >= statuses[$0].limit }
                    .sorted {
                        (statuses[$0].spend - statuses[$0].limit, statuses[$0].id) < (
                            statuses[$1].spend - statuses[$1].limit, statuses[$1].id
                        )
                    }
                for index in over where pool > .zero {
                    let overrun = statuses[index].spend - statuses[index].limit
                    let draw = min(pool, overrun)
                    statuses[index].drawn = draw
                    statuses[index].coveredByPool = draw == overrun
                    pool -= draw
                    guard draw > .zero else { continue }
                    moves.append(PoolMove(periodLabel: label, team: team, user: statuses[index].id, kind: .draw, days: 0, amount: draw))
                }
            }
            proposals += propose(members.map { statuses[$0] }, team: team, label: label, asOf: asOf, currency: config.currency)
        }
        return ReallocationResult(moves: moves, proposals: proposals, approved: [])
    }

    /// Donors to receivers within one team and period, at the pace so far.
    static func propose(_ members: [BudgetStatus], team: String, label: String, asOf: Int64, currency: String) -> [ReallocationProposal] {
        guard let first = members.first, asOf > first.periodStart, asOf < first.periodEnd else { return [] }
        let elapsed = Int128(asOf - first.periodStart)
        let total = Int128(first.periodEnd - first.periodStart)
        var donors: [(id: String, spare: Money, projected: Money, limit: Money)] = []
        var receivers: [(id: String, need: Money, projected: Money, limit: Money)] = []
        for status in members {
            let projected = Money(picos: status.spend.picos * total / elapsed)
            if projected < status.limit {
                // Whole cents only, never below what is spent already.
                let spare = Money(picos: (status.limit - projected).picos / cent.picos * cent.picos)
                if spare >= cent { donors.append((status.id, spare, projected, status.limit)) }
            } else if projected > status.limit {
                let need = Money(picos: ((projected - status.limit).picos + cent.picos - 1) / cent.picos * cent.picos)
                receivers.append((status.id, need, projected, status.limit))
            }
        }
        donors.sort { ($0.spare, $1.id) > ($1.spare, $0.id) }
        receivers.sort { ($0.need, $1.id) > ($1.need, $0.id) }
        var proposals: [ReallocationProposal] = []
        var d = 0
        for var receiver in receivers {
            while receiver.need > .zero, d < donors.count {
                let amount = min(receiver.need, donors[d].spare)
                let donor = donors[d]
                proposals.append(
                    ReallocationProposal(
                        id: "\(label):\(donor.id):\(receiver.id)", periodLabel: label, team: team, from: donor.id, to: receiver.id,
                        amount: amount,
                        reason: "\(receiver.id) is on pace for \(receiver.projected.brief) of \(receiver.limit.brief) \(currency) "
                            + "and \(donor.id) for \(donor.projected.brief) of \(donor.limit.brief) by the end of \(label)"))
                receiver.need -= amount
                donors[d].spare -= amount
                if donors[d].spare < cent { d += 1 }
            }
        }
        return proposals
    }

    /// Days of `user`'s away ranges within local days `from...to`.
    static func awayDays(_ user: User, from: Int, to: Int) -> Int {
        var days = Set<Int>()
        for range in user.away where range.toDay >= from && range.fromDay <= to {
            for day in max(range.fromDay, from)...min(range.toDay, to) { days.insert(day) }
        }
        return days.count
    }

    // MARK: Ledger

    /// Every approval, oldest first.
    public static func approvals(ledger: Ledger) throws(AuditError) -> [ReallocationApproval] {
        try ledger.approvals()
    }

    /// The proposals the last audit made, for `tally realloc list` and `approve`.
    public static func proposals(ledger: Ledger) throws(AuditError) -> [ReallocationProposal] {
        try ledger.proposals()
    }

    public static func moves(ledger: Ledger) throws(AuditError) -> [PoolMove] {
        try ledger.poolMoves()
    }

    /// Records an approval (and its journal row) at the amount proposed.
    static func approve(_ proposal: ReallocationProposal, by: String, at: Int64, ledger: Ledger) throws(AuditError) -> ReallocationApproval
    {
        let approval = ReallocationApproval(
            proposal: proposal.id, periodLabel: proposal.periodLabel, team: proposal.team, from: proposal.from,
            to: proposal.to, amount: proposal.amount, by: by, at: at)
        try ledger.write { transaction in
            try transaction.record(approval)
            try transaction.appendJournal(
                at: at, kind: "approval", subject: "user \(approval.to)",
                detail:
                    "\(approval.amount.exact) moved from user \(approval.from) for \(approval.periodLabel) (\(proposal.id)), approved by \(by)"
            )
        }
        return approval
    }

    /// Replaces the current periods' pool moves and proposals, journalling each move whose amount changed.
    private static func store(_ result: ReallocationResult, statuses: [BudgetStatus], ledger: Ledger, asOf: Int64) throws(AuditError) {
        let labels = Set(statuses.filter { $0.scope == .user }.map(\.periodLabel))
        try ledger.write { transaction in
            var before = try transaction.poolMoveAmounts()
            try transaction.replacePoolMoves(periods: labels, with: result.moves)
            for move in result.moves {
                let key = PoolMoveKey(period: move.periodLabel, team: move.team, user: move.user, kind: move.kind.rawValue)
                if before[key] != Int64(clamping: move.amount.picos) {
                    let what =
                        move.kind == .release
                        ? "released to the \(move.team) pool for \(move.days) days away" : "drawn from the \(move.team) pool"
                    try transaction.appendJournal(
                        at: asOf, kind: move.kind.rawValue, subject: "user \(move.user)",
                        detail: "\(move.amount.exact) \(what) in \(move.periodLabel)")
                }
                before[key] = nil
            }
            // Moves of these periods that no longer stand.
            for key in before.keys.sorted(by: { ($0.period, $0.team, $0.user, $0.kind) < ($1.period, $1.team, $1.user, $1.kind) })
            where labels.contains(key.period) {
                try transaction.appendJournal(
                    at: asOf, kind: key.kind, subject: "user \(key.user)", detail: "0 (\(key.kind) withdrawn) in \(key.period)")
            }
            try transaction.replaceProposals(with: result.proposals, proposedAt: asOf)
        }
    }
}

extension Reallocation {
    /// `tally realloc approve ID`: approves a standing proposal at its amount, under the audit lock, and rewrites the
    /// revocation list at once (a member the move covers is no longer in breach).
    public static func approve(
        id: String, config: Config, by: String, at: Int64
    ) throws(AuditError) -> (ReallocationApproval, EnforcementResult) {
        let (lock, ledger) = try Ledger.openLocked(config, purpose: "tally realloc approve")
        defer { lock.release() }
        let standing = try proposals(ledger: ledger)
        guard let proposal = standing.first(where: { $0.id == id }) else {
            let ids = standing.map(\.id)
            throw AuditError(
                .usage,
                "there is no standing proposal '\(id)'"
                    + (ids.isEmpty ? ": the last audit proposed none" : "; the last audit proposed: \(ids.joined(separator: ", "))"))
        }
        let approval = try approve(proposal, by: by, at: at, ledger: ledger)
        return (approval, try Enforcement.run(ledger: ledger, config: config, asOf: at))
    }
}
