import ArgumentParser
import Foundation
import TallyCommand
import TallyConfig
import TallyCore
import TallyLedger

/// `tally check-config`: reads a config the way the collector and the auditor will, and says what is wrong.
struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check a config file: every problem with its file, line and field (exit 78 if any).",
        discussion: "Environment variables the config names are checked too; missing ones are warnings, since the check may run elsewhere."
    )

    @OptionGroup var config: ConfigOption

    func run() async throws {
        try await runReportingFailures {
            let loaded = try config.load()
            print(Self.summary(loaded, path: config.path))
            for warning in Self.warnings(loaded, environment: ProcessInfo.processInfo.environment) {
                printError("warning: \(warning)")
            }
        }
    }

    static func summary(_ c: Config, path: String) -> String {
        let models = Set(c.pricing.models.map(\.model)).count
        return
            "\(path): ok (\(counted(c.providers.count, "provider")), \(counted(c.orgs.count, "org")), \(counted(c.teams.count, "team")), "
            + "\(counted(c.users.count, "user")), \(counted(c.projects.count, "project")), \(counted(c.keys.count, "key")), "
            + "\(counted(models, "priced model")); currency \(c.currency))"
    }

    /// What is not wrong with the file but will stop a part of Tally where this environment runs it.
    static func warnings(_ c: Config, environment: [String: String]) -> [String] {
        var result: [String] = []
        func needs(_ variable: String, _ purpose: String) {
            if (environment[variable] ?? "").isEmpty { result.append("\(variable) is not set here (\(purpose))") }
        }
        for provider in c.providers { needs(provider.apiKeyEnv, "the collector forwards to \(provider.name) with it") }
        needs(c.collector.hashSecretEnv, "the collector refuses to start without a prompt-hash secret")
        if let file = c.pricing.litellmFile, !FileManager.default.fileExists(atPath: c.resolve(file)) {
            result.append("pricing.litellm_file \(c.resolve(file)) does not exist")
        }
        if c.providers.isEmpty { result.append("no providers: the collector has nowhere to forward") }
        return result
    }
}
