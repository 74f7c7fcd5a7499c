import ArgumentParser
import TallyCommand
import TallyLedger

/// The `tally` command: its subcommands parse arguments and call one module entry point each.
public struct Tally: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "Tells an organisation what its LLM API calls cost, who spent it, and what was wasted.",
        discussion: """
            The collector proxies and logs LLM calls; the auditor (run by cron) prices them from the logs.
            Exit codes: 0 ok, 64 usage, 65 data error, 66 no input, 74 I/O error, 75 try again later, 78 config error.
            """,
        subcommands: [
            CheckConfig.self, Keys.self, Collect.self, AuditCommand.self, ReportCommand.self, Realloc.self, Verify.self, SynthCommand.self,
        ]
    )

    public init() {}
}

extension Tally {
    /// Parses the process arguments and runs the chosen command; the executable's only call.
    public static func runAsMain() async {
        await main()
    }
}
