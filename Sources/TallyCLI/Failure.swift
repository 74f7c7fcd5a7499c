import ArgumentParser
import Auditor
import Collector
import Foundation
import Synth
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// Exit codes from sysexits.h, which cron wrappers and scripts understand.
public enum ExitStatus {
    public static let usage: Int32 = 64
    public static let dataError: Int32 = 65
    public static let noInput: Int32 = 66
    public static let ioError: Int32 = 74
    public static let tryAgain: Int32 = 75
    public static let config: Int32 = 78
}

/// Writes a line to standard error (Swift 6 rejects the global `stderr`).
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Runs a command body, printing any failure once and turning it into the exit code that names its kind.
func runReportingFailures(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ConfigError {
        printError(error.description)
        printError("tally: the config has \(counted(error.diagnostics.count, "problem")); nothing was done")
        throw ExitCode(ExitStatus.config)
    } catch let error as FileIOError {
        printError("tally: \(error.message)")
        throw ExitCode(error.code == .locked ? ExitStatus.tryAgain : ExitStatus.ioError)
    } catch let error as AuditError {
        printError("tally: \(error.message)")
        throw ExitCode(exitStatus(error.code))
    } catch let error as CollectorError {
        // The collector refuses to start on what the environment lacks (the hash secret, a port it cannot bind).
        printError("tally collect: \(error.message)")
        throw ExitCode(ExitStatus.config)
    } catch let error as SynthError {
        printError("tally: \(error.message)")
        throw ExitCode(ExitStatus.config)
    } catch let error as ValidationError {
        throw error
    } catch {
        printError("tally: \(error)")
        throw ExitCode(ExitStatus.ioError)
    }
}

/// The exit status for each kind of audit failure.
func exitStatus(_ code: AuditError.Code) -> Int32 {
    switch code {
    case .locked: ExitStatus.tryAgain
    case .data: ExitStatus.dataError
    case .usage: ExitStatus.usage
    case .config: ExitStatus.config
    default: ExitStatus.ioError
    }
}

/// `1 key`, `3 keys`: a count and its noun, plural when it is not one.
func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

/// `--config FILE`, which every command that reads the config takes.
struct ConfigOption: ParsableArguments {
    @Option(name: .customLong("config"), help: "The config file (YAML).")
    var path: String

    /// The config with every check the CLI can make, including PCRE2 compilation of redaction patterns.
    /// Also sets the mode of the files the command creates (`file_mode`).
    func load() throws(ConfigError) -> Config {
        let config = try Config.load(path: path, validatePattern: CollectorPatterns.problem)
        FileIO.setFileMode(config.fileMode)
        return config
    }
}
