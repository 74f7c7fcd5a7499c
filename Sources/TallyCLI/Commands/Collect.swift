import ArgumentParser
import Collector
import Foundation
import Logging
import TallyConfig
import TallyCore
import TallyLedger

/// `tally collect`: run the collector until SIGTERM or SIGINT.
struct Collect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collect",
        abstract: "Run the collector: a passthrough proxy that logs every call's usage and refuses revoked keys.",
        discussion: """
            Applications point their SDK's base URL at http://<listen>/<provider> (or /v1 for the default provider) and \
            use a Tally key (tk-…) as their API key. SIGTERM or SIGINT stops accepting, lets calls in flight finish, \
            and closes the active log segment; SIGHUP reloads the revocation list and the config's keys (a new key works without \
            a restart; a config that no longer loads keeps the keys in force and says why). Logs go to stderr as JSON lines.
            """
    )

    @OptionGroup var config: ConfigOption

    @Option(name: .long, help: "Override collector.listen (host:port; port 0 picks a free port).")
    var listen: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: LogLevel = .info

    enum LogLevel: String, ExpressibleByArgument, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

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
