import ArgumentParser
import Collector
import Foundation
import Logging
import TallyConfig
import TallyCore

/// `tally collect`: run the collector until SIGTERM or SIGINT.
public struct Collect: AsyncParsableCommand {
    public static let configuration = CollectOptions.configuration(commandName: "collect")

    @OptionGroup var options: CollectOptions

    public init() {}

    public func run() async throws { try await options.run() }
}

/// The `tally-collector` executable: the same collector as `tally collect`, in an executable that links nothing of
/// the auditor, the ledger or the reports (less to load, less memory; see docs/collector.md).
public struct CollectorMain: AsyncParsableCommand {
    public static let configuration = CollectOptions.configuration(commandName: "tally-collector")

    @OptionGroup var options: CollectOptions

    public init() {}

    public func run() async throws { try await options.run() }
}

/// The collector's command line, which both ways of starting it take.
public struct CollectOptions: ParsableArguments {
    static func configuration(commandName: String) -> CommandConfiguration {
        CommandConfiguration(
            commandName: commandName,
            abstract: "Run the collector: a passthrough proxy that logs every call's usage and refuses revoked keys.",
            discussion: """
                Applications point their SDK's base URL at http://<listen>/<provider> (or /v1 for the default provider) and \
                use a Tally key (tk-…) as their API key. SIGTERM or SIGINT stops accepting, lets calls in flight finish, \
                and closes the active log segment; SIGHUP reloads the revocation list and the config's keys (a new key works \
                without a restart; a config that no longer loads keeps the keys in force and says why). Logs go to stderr as \
                JSON lines. Exit codes: 0 stopped cleanly, 74 I/O error, 75 the log folder is held by another collector, \
                78 config error.
                """
        )
    }

    @OptionGroup var config: ConfigOption

    @Option(name: .long, help: "Override collector.listen (host:port; port 0 picks a free port).")
    var listen: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: LogLevel = .info

    enum LogLevel: String, ExpressibleByArgument, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    public init() {}

    func run() async throws {
        try await runReportingFailures {
            var loaded = try config.load()
            if let listen { loaded.collector.listen = listen }
            let logger = CLILogging.logger(label: "tally.collect", level: Logger.Level(rawValue: logLevel.rawValue) ?? .info)
            try await CollectorServer.run(
                config: loaded, configPath: config.path, environment: ProcessInfo.processInfo.environment, logger: logger,
                gracePeriod: .milliseconds(loaded.collector.shutdownGraceMs))
        }
    }
}

extension CollectorMain {
    /// Parses the process arguments and runs the collector; the `tally-collector` executable's only call.
    public static func runAsMain() async {
        await main()
    }
}
