import ArgumentParser
import Collector
import Foundation
import TallyConfig
import TallyCore

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
public func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// `1 key`, `3 keys`: a count and its noun, plural when it is not one.
public func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

/// What a failed command prints to stderr, and the exit status that names its kind.
public struct Failure {
    public var lines: [String]
    public var status: Int32

    public init(_ lines: [String], status: Int32) {
        self.lines = lines
        self.status = status
    }

    /// The failures every command that loads the config or runs the collector can meet; nil for any other error.
    public static func common(_ error: any Error) -> Failure? {
        switch error {
        case let error as ConfigError:
            Failure(
                [error.description, "tally: the config has \(counted(error.diagnostics.count, "problem")); nothing was done"],
                status: ExitStatus.config)
        case let error as FileIOError:
            Failure(["tally: \(error.message)"], status: error.code == .locked ? ExitStatus.tryAgain : ExitStatus.ioError)
        case let error as CollectorError:
            // The collector refuses to start on what the environment lacks (the hash secret, a port it cannot bind).
            Failure(["tally collect: \(error.message)"], status: ExitStatus.config)
        default:
            nil
        }
    }
}

/// Runs a command body, printing any failure once and turning it into the exit code that names its kind.
///
/// - Parameter classify: the failures particular to the command's modules (the audit's, the generator's), asked
///   before the common ones; anything neither knows is an I/O error.
public func runReportingFailures(
    classify: (any Error) -> Failure? = { _ in nil }, _ body: () async throws -> Void
) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        let failure = classify(error) ?? Failure.common(error) ?? Failure(["tally: \(error)"], status: ExitStatus.ioError)
        for line in failure.lines { printError(line) }
        throw ExitCode(failure.status)
    }
}

/// `--config FILE`, which every command that reads the config takes.
public struct ConfigOption: ParsableArguments {
    @Option(name: .customLong("config"), help: "The config file (YAML).")
    public var path: String

    public init() {}

    /// The config with every check the CLI can make, including PCRE2 compilation of redaction patterns.
    /// Also sets the mode of the files the command creates (`file_mode`).
    public func load() throws(ConfigError) -> Config {
        let config = try Config.load(path: path, validatePattern: { PCRE2Pattern.problem(with: $0) })
        FileIO.setFileMode(config.fileMode)
        return config
    }
}
