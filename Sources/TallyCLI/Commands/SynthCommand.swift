import ArgumentParser
import Foundation
import Synth
import TallyCommand
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// `tally synth`: deterministic synthetic logs for demos, tests and benchmarks.
struct SynthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write deterministic synthetic usage logs for the config's keys and priced models.",
        discussion: """
            The same config, options and seed give the same files. The logs carry what an audit must find: a few heavy \
            users, exact and near duplicate prompts, a retry loop after errors, one runaway key, cached and reasoning \
            tokens, and upstream errors. Each synthetic collector (<collector.id>-1, -2, …) is generated on its own core.
            """
    )

    @OptionGroup var config: ConfigOption

    @Option(name: .long, help: "Events to write in all.")
    var events: Int

    @Option(name: .long, help: "Days the events span.")
    var days: Int = 30

    @Option(name: .long, help: "Seed; the same seed gives the same logs.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Log directory to write under (default: the config's collector.log_dir).")
    var out: String?

    @Option(name: .long, help: "End of the span, RFC 3339 (default: the start of the current UTC hour).")
    var end: String?

    @Option(name: .long, help: "Synthetic collectors, generated in parallel.")
    var collectors: Int = 2

    func validate() throws {
        guard events >= 0 else { throw ValidationError("--events must not be negative") }
        guard (1...3650).contains(days) else { throw ValidationError("--days must be from 1 to 3650") }
        guard (1...64).contains(collectors) else { throw ValidationError("--collectors must be from 1 to 64") }
        if let end, Timestamp.parse(end) == nil { throw ValidationError("--end must be an RFC 3339 time such as 2026-11-01T00:00:00Z") }
    }

    func run() async throws {
        try await runReportingFailures {
            let loaded = try config.load()
            let endMs = end.flatMap { Timestamp.parse($0) } ?? Timestamp.now() / 3_600_000 * 3_600_000
            let directory = out ?? loaded.resolve(loaded.collector.logDir)
            var options = SynthOptions(events: events, days: days, seed: seed, outDirectory: directory, end: endMs)
            options.collectors = collectors
            let started = ContinuousClock.now
            let summary = try await Synth.run(config: loaded, options: options)
            let seconds = (ContinuousClock.now - started).seconds
            print(Self.describe(summary, out: directory, seconds: seconds))
        }
    }

    static func describe(_ s: SynthSummary, out: String, seconds: Double) -> String {
        let rate = seconds > 0 ? Int(Double(s.events) / seconds) : 0
        var lines = [
            "synth: \(s.events) events in \(s.segments) segments under \(out) (collectors \(s.collectors.joined(separator: ", ")))"
                + " in \(String(format: "%.2f", seconds)) s, \(rate) events/s"
        ]
        if s.events > 0 {
            lines.append("  span \(Timestamp.format(milliseconds: s.firstTimestamp)) to \(Timestamp.format(milliseconds: s.lastTimestamp))")
        }
        lines.append(
            "  planted: \(s.exactDuplicates) exact duplicate prompts, \(s.nearDuplicates) near duplicates, \(s.upstreamErrors) upstream errors"
        )
        if let loop = s.retryLoop {
            lines.append("  retry loop: key \(loop.key), \(loop.repeats) repeats from \(Timestamp.format(milliseconds: loop.start))")
        }
        if let runaway = s.runaway {
            lines.append(
                "  runaway: key \(runaway.key), \(runaway.requests) requests from \(Timestamp.format(milliseconds: runaway.start)) to \(Timestamp.format(milliseconds: runaway.end))"
            )
        }
        return lines.joined(separator: "\n")
    }
}
