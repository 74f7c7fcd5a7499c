import ArgumentParser
import Auditor
import Report
import TallyCommand
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// `tally realloc list` and `tally realloc approve ID`: budget moves within a team.
struct Realloc: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "See and approve moves of unused user budget within a team.",
        discussion: """
            Each audit projects every member's spend to the period's end and proposes moves from members who will not use \
            their budget to members who will run out. It also releases away members' budget to pool teams and records \
            what each member drew from the pool. With `audit.auto_approve: true` the audit approves its own proposals.
            """,
        subcommands: [List.self, Approve.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Standing proposals, pool releases and draws, and approvals, from the last audit.")

        @OptionGroup var config: ConfigOption

        func run() async throws {
            try await runReportingFailures {
                let loaded = try config.load()
                let ledger = try Ledger.reading(loaded)
                let proposals = try Reallocation.proposals(ledger: ledger)
                let moves = try Reallocation.moves(ledger: ledger)
                let approvals = try Reallocation.approvals(ledger: ledger)
                let currency = loaded.currency
                if proposals.isEmpty {
                    print("No standing proposals.")
                } else {
                    print("Proposals (approve with `tally realloc approve ID`):")
                    print(
                        TextTable.render(
                            header: ["id", "team", "from", "to", "amount \(currency)", "why"],
                            rows: proposals.map { [$0.id, $0.team, $0.from, $0.to, $0.amount.formatted(places: 2), $0.reason] },
                            rightAligned: [4]), terminator: "")
                }
                if !moves.isEmpty {
                    print("\nTeam pools:")
                    print(
                        TextTable.render(
                            header: ["period", "team", "user", "move", "days away", "amount \(currency)"],
                            rows: moves.map {
                                [
                                    $0.periodLabel, $0.team, $0.user, $0.kind == .release ? "released" : "drew",
                                    $0.kind == .release ? "\($0.days)" : "", $0.amount.formatted(places: 2),
                                ]
                            },
                            rightAligned: [4, 5]), terminator: "")
                }
                if !approvals.isEmpty {
                    print("\nApproved:")
                    print(
                        TextTable.render(
                            header: ["period", "team", "from", "to", "amount \(currency)", "by", "at"],
                            rows: approvals.map {
                                [
                                    $0.periodLabel, $0.team, $0.from, $0.to, $0.amount.formatted(places: 2), $0.by,
                                    Timestamp.format(milliseconds: $0.at),
                                ]
                            },
                            rightAligned: [4]), terminator: "")
                }
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve a standing proposal: recorded in the ledger with who and when, and applied at once.")

        @OptionGroup var config: ConfigOption

        @Argument(help: "The proposal's id, as `tally realloc list` shows it (such as 2026-11:alice:bob).")
        var id: String

        func run() async throws {
            try await runReportingFailures {
                let loaded = try config.load()
                let (approval, result) = try Reallocation.approve(
                    id: id, config: loaded, by: KeyDecisions.currentUser(), at: Timestamp.now())
                print(
                    "tally realloc approve: \(approval.amount.formatted(places: 2)) \(loaded.currency) moved from \(approval.from) to \(approval.to) "
                        + "for \(approval.periodLabel); \(result.path) now lists \(counted(result.list.entries.count, "key"))")
            }
        }
    }
}

/// `tally verify`: checks the ledger's journal chain.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that no row of the ledger's journal was altered or removed.",
        discussion: "Exits 0 when the hash chain is whole, 1 when it is not (each problem is named on standard error)."
    )

    @OptionGroup var config: ConfigOption

    func run() async throws {
        try await runReportingFailures {
            let loaded = try config.load()
            let ledger = try Ledger.reading(loaded)
            let result = try Journal.verify(ledger: ledger)
            guard result.problems.isEmpty else {
                for problem in result.problems { printError("tally verify: \(problem)") }
                printError("tally verify: the journal of \(ledger.path) has been tampered with (\(result.rows) rows checked)")
                throw ExitCode(1)
            }
            print(
                "tally verify: the journal is whole: \(result.rows) rows"
                    + (result.head.isEmpty ? "" : ", last hash \(result.head.prefix(16))"))
        }
    }
}
