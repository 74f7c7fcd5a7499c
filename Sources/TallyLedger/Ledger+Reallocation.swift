import GRDB
import Report
import TallyCore

extension Ledger {
    /// Every approval, oldest first.
    package func approvals() throws(AuditError) -> [ReallocationApproval] {
        try access { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT proposal, period, team, from_user, to_user, amount, approved_by, approved_at FROM realloc_approvals ORDER BY id
                    """
            ).map { row in
                ReallocationApproval(
                    proposal: row[0], periodLabel: row[1], team: row[2], from: row[3], to: row[4],
                    amount: Money(picos: Int128(row[5] as Int64)), by: row[6], at: row[7])
            }
        }
    }

    /// The standing proposals, by period, team and id.
    package func proposals() throws(AuditError) -> [ReallocationProposal] {
        try access { db in
            try Row.fetchAll(
                db, sql: "SELECT id, period, team, from_user, to_user, amount, reason FROM realloc_proposals ORDER BY period, team, id"
            )
            .map { row in
                ReallocationProposal(
                    id: row[0], periodLabel: row[1], team: row[2], from: row[3], to: row[4],
                    amount: Money(picos: Int128(row[5] as Int64)), reason: row[6])
            }
        }
    }

    /// Every pool move, by period, team, kind (releases first) and user.
    package func poolMoves() throws(AuditError) -> [PoolMove] {
        try access { db in
            try Row.fetchAll(
                db, sql: "SELECT period, team, user, kind, days, amount FROM pool_moves ORDER BY period, team, kind DESC, user"
            ).compactMap { row in
                guard let kind = PoolMove.Kind(rawValue: row[3]) else { return nil }
                return PoolMove(
                    periodLabel: row[0], team: row[1], user: row[2], kind: kind, days: row[4], amount: Money(picos: Int128(row[5] as Int64))
                )
            }
        }
    }
}

/// A pool move's identity: the period, team, user and kind (`release` or `draw`).
package struct PoolMoveKey: Hashable, Sendable {
    package var period, team, user, kind: String

    package init(period: String, team: String, user: String, kind: String) {
        self.period = period
        self.team = team
        self.user = user
        self.kind = kind
    }
}

extension Ledger.Transaction {
    /// Records an approval and takes its proposal off the standing list.
    package func record(_ approval: ReallocationApproval) throws {
        try db.execute(
            sql: """
                INSERT INTO realloc_approvals (proposal, period, team, from_user, to_user, amount, approved_by, approved_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                approval.proposal, approval.periodLabel, approval.team, approval.from, approval.to,
                Int64(clamping: approval.amount.picos), approval.by, approval.at,
            ])
        try db.execute(sql: "DELETE FROM realloc_proposals WHERE id = ?", arguments: [approval.proposal])
    }

    /// The amount of every stored pool move, in pico-units.
    package func poolMoveAmounts() throws -> [PoolMoveKey: Int64] {
        var amounts: [PoolMoveKey: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT period, team, user, kind, amount FROM pool_moves") {
            amounts[PoolMoveKey(period: row[0], team: row[1], user: row[2], kind: row[3])] = row[4]
        }
        return amounts
    }

    /// Replaces the pool moves of `periods` with `moves`.
    package func replacePoolMoves(periods: Set<String>, with moves: [PoolMove]) throws {
        for label in periods { try db.execute(sql: "DELETE FROM pool_moves WHERE period = ?", arguments: [label]) }
        for move in moves {
            try db.execute(
                sql: "INSERT INTO pool_moves (period, team, user, kind, days, amount) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [move.periodLabel, move.team, move.user, move.kind.rawValue, move.days, Int64(clamping: move.amount.picos)])
        }
    }

    /// Replaces the standing proposals with `proposals`, made at `proposedAt`.
    package func replaceProposals(with proposals: [ReallocationProposal], proposedAt: Int64) throws {
        try db.execute(sql: "DELETE FROM realloc_proposals")
        for p in proposals {
            try db.execute(
                sql: """
                    INSERT INTO realloc_proposals (id, period, team, from_user, to_user, amount, reason, proposed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [p.id, p.periodLabel, p.team, p.from, p.to, Int64(clamping: p.amount.picos), p.reason, proposedAt])
        }
    }
}
