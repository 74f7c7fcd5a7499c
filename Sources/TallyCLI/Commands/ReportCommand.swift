import ArgumentParser
import Auditor
import Report
import TallyCommand
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// `tally report …`: figures read from the ledger alone.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write or print reports from the ledger (run `tally audit` first to bring it up to date).",
        subcommands: [Files.self, Attribution.self],
        defaultSubcommand: Files.self
    )

    struct Files: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "files",
            abstract: "Write a month's report files (the CSV files, focus.csv and report.html) from the ledger alone.",
            discussion: """
                The same files `tally audit` writes into audit.reports_dir/<month>/, for any month, into --out. A month that \
                has ended is reported as of its end and marked final; the current month as of now. Reads the ledger only: \
                it does not ingest, and does not need the audit lock. `tally report --period 2026-10 --out DIR` is short for \
                `tally report files …`.
                """
        )

        @OptionGroup var config: ConfigOption

        @Option(name: .long, help: "The month (2026-11). Default: this month.")
        var period: String?

        @Option(name: .long, help: "The folder to write into (created when missing). Default: audit.reports_dir/<month>.")
        var out: String?

        @Option(name: .long, help: "Take 'now' at this time (RFC 3339), for replays.")
        var asOf: String?

        func validate() throws {
            if let asOf, Timestamp.parse(asOf) == nil { throw ValidationError("--as-of must be an RFC 3339 time") }
            if let period, period.utf8.count != 7 || (try? Period(parsing: period)) == nil {
                throw ValidationError(
                    "--period must be a month such as 2026-11 (reports are monthly; `tally report attribution` takes weeks and days)")
            }
        }

        func run() async throws {
            try await runReportingFailures {
                let loaded = try config.load()
                var calendar = try LocalCalendar.audit(loaded)
                let now = asOf.flatMap { Timestamp.parse($0) } ?? Timestamp.now()
                let month = try period.map { try Period(parsing: $0) } ?? Period.month(containing: calendar.day(of: now))
                Audit.mapLargeBlocksApart()
                let ledger = try Ledger.reading(loaded)
                let end = calendar.start(ofDay: month.lastDay + 1)
                let folder = out ?? loaded.resolve(loaded.audit.reportsDir) + "/" + month.label
                // A month that has ended has its final report, filed by the audit (with its late calls and corrections):
                // this command never writes over it.
                if out == nil, now >= end || Timestamp.now() >= end {
                    throw AuditError(
                        .usage,
                        "\(month.label) has ended: its final report is the one `tally audit` files in \(folder), and this "
                            + "command does not write over it; to write the month's files elsewhere, pass --out DIR")
                }
                // No audit lock is taken: one snapshot of the ledger keeps the files consistent if an audit runs meanwhile.
                let report = try ledger.snapshot { () throws(AuditError) in
                    let report = try PeriodReportBuilder.build(
                        ledger: ledger, config: loaded, period: month, asOf: now, isFinal: now >= end)
                    try ReportPublishing.write(report, to: folder)
                    return report
                }
                print(
                    "tally report: \(month.label)\(report.isFinal ? " (final)" : "") written to \(folder): \(ReportFolder.fileNames.count) files and "
                        + "\(ReportFolder.manifestName); total \(report.total.formatted(places: 2)) \(loaded.currency)")
            }
        }
    }

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, csv, json
    }

    struct Attribution: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Spend, requests and tokens by any combination of dimensions.",
            discussion: """
                Dimensions: \(SpendDimension.names). A key the config no longer lists shows as 'unknown'; a missing value as \
                '(none)'. Days, weeks and months are in the config's audit.timezone. Costs in CSV and JSON are exact; \
                the table rounds to cents. Calls to models without a price are counted as unpriced and listed, never as zero.
                """
        )

        @OptionGroup var config: ConfigOption

        @Option(name: .long, help: "A month (2026-11), an ISO week (2026-W47) or a day (2026-11-22). Default: this month.")
        var period: String?

        @Option(name: .long, help: "First day (YYYY-MM-DD), with --to.")
        var from: String?

        @Option(name: .long, help: "Last day, included (YYYY-MM-DD), with --from.")
        var to: String?

        @Option(name: .long, help: "Comma-separated dimensions, such as team,model.")
        var by: String = "team"

        @Option(name: .long, help: "table, csv or json.")
        var format: Format = .table

        @Option(name: .long, help: "Take 'this month' at this time (RFC 3339) instead of now.")
        var asOf: String?

        func validate() throws {
            if period != nil && (from != nil || to != nil) { throw ValidationError("give --period or --from/--to, not both") }
            if (from == nil) != (to == nil) { throw ValidationError("--from and --to go together") }
            if let asOf, Timestamp.parse(asOf) == nil { throw ValidationError("--as-of must be an RFC 3339 time") }
        }

        func run() async throws {
            try await runReportingFailures {
                let loaded = try config.load()
                let dimensions = try SpendDimension.list(by)
                var calendar = try LocalCalendar.audit(loaded)
                let chosen: Period
                if let period {
                    chosen = try Period(parsing: period)
                } else if let from, let to {
                    chosen = try Period(from: from, to: to)
                } else {
                    let now = asOf.flatMap { Timestamp.parse($0) } ?? Timestamp.now()
                    chosen = Period.month(containing: calendar.day(of: now))
                }
                let ledger = try Ledger.reading(loaded)
                let breakdown = try AttributionQuery.breakdown(
                    ledger: ledger, period: chosen, by: dimensions,
                    timezone: loaded.audit.timezone, currency: loaded.currency)
                switch format {
                case .table: print(breakdown.table(), terminator: "")
                case .csv: print(breakdown.csv(), terminator: "")
                case .json: print(breakdown.json(), terminator: "")
                }
            }
        }
    }
}
