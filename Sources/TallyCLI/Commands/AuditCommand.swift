import ArgumentParser
import Auditor
import Foundation
import Report
import TallyCommand
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// `tally audit`: what cron runs. Ingests new log lines into the ledger, prices and attributes them.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Ingest new usage logs into the ledger, price every call and attribute its cost.",
        discussion: """
            Safe to run as often as you like (cron every few minutes): each event is counted once, however often it is \
            read. Then finds this month's waste (duplicate prompts, retry loops, runaway keys), evaluates every budget \
            in its current period with team pools and approved reallocations, records alerts (posted to the webhook if \
            one is configured), proposes reallocations, journals what changed, and writes the revocation list the \
            collector enforces (breached hard budgets until the period ends, expired keys, runaway keys with \
            `runaway.action: revoke`, people's decisions; priority keys are reported, not revoked), and writes this \
            month's reports (CSV and HTML) into audit.reports_dir/<month>/ with latest/ pointing there; a month that has \
            ended gets a final report once, and again only if late calls for it arrive. Prints one summary line; on a terminal also a progress bar. \
            With --as-of more than a minute from now the run is a replay: it ingests and says what it would do as of \
            then, but leaves the revocation list, journal, pools, approvals, alerts and report folder as they are and \
            posts nothing (reports go to --out when given); --apply makes it act as of then instead (rebuilding a \
            ledger). Bad lines are quarantined in the \
            ledger, never dropped. Exit codes: 0 done, 64 usage, 65 nothing could be ingested, 74 I/O error, 75 another audit \
            holds the lock, 78 config error.
            """
    )

    @OptionGroup var config: ConfigOption

    @Flag(name: .long, help: "Also ingest the complete lines of segments still being written.")
    var includeOpen = false

    @Option(name: .long, help: "Run as if it were this time (RFC 3339): a replay that changes nothing live, unless --apply.")
    var asOf: String?

    @Flag(name: .long, help: "With a past or future --as-of: write the revocation list, journal, pools and reports as of then.")
    var apply = false

    @Option(name: .long, help: "Write the reports into this folder instead of audit.reports_dir.")
    var out: String?

    @Flag(name: .long, help: "No progress bar even on a terminal.")
    var quiet = false

    func validate() throws {
        if let asOf, Timestamp.parse(asOf) == nil { throw ValidationError("--as-of must be an RFC 3339 time such as 2026-11-22T12:00:00Z") }
    }

    func run() async throws {
        try await runReportingFailures {
            let loaded = try config.load()
            let options = Audit.Options(
                includeOpen: includeOpen, asOf: asOf.flatMap { Timestamp.parse($0) } ?? Timestamp.now(), apply: apply, reportsOut: out)
            let bar = ProgressBar(enabled: !quiet && isatty(STDERR_FILENO) == 1)
            let outcome = try await Audit.run(config: loaded, options: options) { bar.update($0) }
            bar.finish()
            let result = outcome.ingest
            for failure in result.failures { printError("tally audit: \(failure)") }
            for path in result.totals.damaged {
                printError("tally audit: damaged segment \(path): its complete lines were ingested; the rest could not be read")
            }
            if !result.totals.unknownKeys.isEmpty {
                let keys = result.totals.unknownKeys.sorted { $0.value > $1.value }.prefix(5).map { "\($0.key) (\($0.value))" }
                printError("tally audit: calls with keys the config does not list, kept as 'unknown': \(keys.joined(separator: ", "))")
            }
            for warning in outcome.priceWarnings { printError("tally audit: pricing: \(warning)") }
            for change in outcome.repriced { printError("tally audit: re-priced \(change)") }
            if !result.totals.unpricedModels.isEmpty {
                let models = result.totals.unpricedModels.sorted { $0.value > $1.value }.prefix(5).map { "\($0.key) (\($0.value))" }
                printError("tally audit: calls to models without a price, counted as unpriced: \(models.joined(separator: ", "))")
            }
            let enforcement = outcome.enforcement
            if let why = enforcement.rebuilt {
                printError("tally audit: the revocation list could not be read (\(why)); rebuilt from the ledger and journal")
            }
            for (key, status) in enforcement.overrides {
                printError(
                    "tally audit: priority key \(key) is not revoked although \(Enforcement.describe(status, currency: loaded.currency))")
            }
            for finding in enforcement.runawayOverrides {
                printError("tally audit: priority key \(finding.subject) is not revoked although it ran away: \(finding.detail)")
            }
            for alert in outcome.alerts { printError("tally audit: alert: \(Alerts.describe(alert, currency: loaded.currency))") }
            // Runaways each; retry loops can be many, so the costliest few and a count.
            let runaways = outcome.waste.findings.filter { $0.kind == .runaway }
            let loops = outcome.waste.findings.filter { $0.kind == .retryLoop }
            for finding in runaways + loops.prefix(3) {
                printError(
                    "tally audit: \(finding.kind == .runaway ? "runaway key" : "retry loop on key") \(finding.subject): \(finding.calls) calls "
                        + "from \(Timestamp.format(milliseconds: finding.firstSeen)) to \(Timestamp.format(milliseconds: finding.lastSeen)), "
                        + "\(finding.detail), \(finding.cost.brief) \(loaded.currency)")
            }
            for approval in enforcement.reallocation.approved {
                printError(
                    "tally audit: approved (audit.auto_approve): \(approval.amount.formatted(places: 2)) \(loaded.currency) from \(approval.from) "
                        + "to \(approval.to) for \(approval.periodLabel)")
            }
            for problem in outcome.webhook.problems { printError("tally audit: alert webhook: \(problem)") }
            if loops.count > 3 {
                printError("tally audit: and \(loops.count - 3) more retry loops (the waste table in the ledger lists them all)")
            }
            if outcome.replay {
                printError(
                    "tally audit: replay as of \(asOf ?? ""): the log was ingested as usual; the figures below are what an audit would do "
                        + "then, but the revocation list, journal, pools, approvals, alerts and reports were left as they are "
                        + "(\(out.map { "reports written to \($0)" } ?? "no reports written: use --out DIR"); --apply acts as of then)")
                for entry in enforcement.list.entries {
                    printError("tally audit: replay: would list \(entry.keyID): \(entry.reason)")
                }
            }
            for written in outcome.reports.written where written.isFinal {
                var line = "tally audit: final report for \(written.period) written to \(written.folder)"
                if let late = written.late {
                    line +=
                        " again: \(counted(Int(late.requests), "late call")) (\(late.cost.brief) \(loaded.currency)) arrived after it closed"
                }
                printError(line)
            }
            print(
                Self.summary(result) + Self.summary(enforcement, replay: outcome.replay) + ", \(counted(outcome.alerts.count, "new alert"))"
                    + (outcome.webhook.posted > 0 ? " (\(outcome.webhook.posted) posted)" : "")
                    + Self.summary(outcome.waste, currency: loaded.currency)
                    + "; \(counted(enforcement.reallocation.proposals.count, "reallocation proposal"))"
                    + String(format: "; evaluated in %.2f s", outcome.evaluationSeconds)
                    + (outcome.reports.written.isEmpty
                        ? "; no reports written"
                        : "; reports in \(outcome.reports.written.last?.folder ?? outcome.reports.latest)"
                            + String(format: " (%.2f s)", outcome.reportSeconds)))
            let t = result.totals
            if t.events + t.duplicates == 0 && t.quarantined > 0 {
                printError("tally audit: no line could be ingested; see the quarantine table in \(outcome.ledgerPath)")
                throw ExitCode(ExitStatus.dataError)
            }
            if !result.failures.isEmpty { throw ExitCode(ExitStatus.ioError) }
        }
    }

    static func summary(_ e: EnforcementResult, replay: Bool = false) -> String {
        let breached = e.statuses.filter(\.isBreached).count
        if replay {
            return "; \(counted(breached, "budget")) breached, \(counted(e.list.entries.count, "key")) would be revoked"
                + " (revocation list left as it is)"
        }
        return "; \(counted(breached, "budget")) breached, \(counted(e.list.entries.count, "key")) revoked"
            + " (revocation list \(e.rewritten ? "rewritten" : "unchanged"))"
    }

    static func summary(_ waste: WasteResult, currency: String) -> String {
        return
            "; waste \(waste.periodLabel): \(waste.total.brief) \(currency) in \(counted(waste.count(.exactDuplicate), "duplicate cluster")), "
            + "\(counted(waste.count(.nearDuplicate), "near-duplicate cluster")), \(counted(waste.count(.retryLoop), "retry loop")), "
            + "\(counted(waste.count(.runaway), "runaway episode"))"
    }

    static func summary(_ result: IngestResult) -> String {
        let t = result.totals
        var parts = [
            "\(t.segmentsRead) segments read (\(t.segmentsUnchanged) unchanged, \(t.segmentsLeft) left open)",
            "\(t.events) events ingested", "\(t.duplicates) duplicates skipped", "\(t.quarantined) quarantined",
            "\(t.unpriced) unpriced",
        ]
        if !t.damaged.isEmpty { parts.append("\(t.damaged.count) damaged") }
        parts.append(String(format: "%.2f s", result.seconds))
        return "tally audit: " + parts.joined(separator: ", ")
    }
}

/// A one-line progress bar on standard error, redrawn at most five times a second.
final class ProgressBar {
    private let enabled: Bool
    private var lastDraw = ContinuousClock.now - .seconds(1)
    private var drawn = false
    private let started = ContinuousClock.now

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ p: IngestProgress) {
        guard enabled, ContinuousClock.now - lastDraw >= .milliseconds(200) || p.segmentsDone == p.segmentsTotal else { return }
        lastDraw = ContinuousClock.now
        let fraction = p.bytesTotal > 0 ? Double(p.bytesDone) / Double(p.bytesTotal) : 1
        let width = 30
        let filled = Int(fraction * Double(width))
        let seconds = (ContinuousClock.now - started).seconds
        let line =
            "\r[\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] "
            + String(format: "%3.0f%%", fraction * 100) + " \(p.segmentsDone)/\(p.segmentsTotal) segments, \(p.events) events, "
            + String(format: "%.1f s", seconds)
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func finish() {
        guard drawn else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
