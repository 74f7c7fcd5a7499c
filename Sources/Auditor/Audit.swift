import CMemory
import Foundation
import Report
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// One `tally audit` run: take the lock, open the ledger, ingest what is new, then evaluate budgets and expiries and
/// write the revocation list, all under the same lock.
public enum Audit {
    public struct Options: Sendable {
        /// Also read the complete lines of segments still being written.
        public var includeOpen = false
        /// The audit's clock, milliseconds since the epoch; replays and tests set it, cron leaves it at now.
        public var asOf: Int64
        /// Where `audit.webhook_url_env` is looked up.
        public var environment: [String: String]
        public var webhookLimits = AlertWebhook.Limits()
        /// Let a clock that is not now change live state (`--apply`): rebuilding a ledger, tests. Without it such a run
        /// is a replay (`isReplay`).
        public var apply: Bool
        /// Write the reports here instead of `audit.reports_dir` (`--out`); a replay writes reports only here.
        public var reportsOut: String?

        public init(
            includeOpen: Bool = false, asOf: Int64 = Timestamp.now(), environment: [String: String] = ProcessInfo.processInfo.environment,
            apply: Bool = false, reportsOut: String? = nil
        ) {
            self.includeOpen = includeOpen
            self.asOf = asOf
            self.environment = environment
            self.apply = apply
            self.reportsOut = reportsOut
        }

        /// How far the clock may be from the wall clock and still be "now" (a run takes time; cron starts late).
        public static let replaySlackMs: Int64 = 60_000

        /// Whether this run is a replay: its clock is more than `replaySlackMs` from the wall clock, and `apply` was not
        /// given. A replay ingests (the log is what it is) and evaluates as of its clock, but changes no live state: the
        /// revocation list, the journal, pools, approvals, alerts and the report folder stay as they were, no webhook is
        /// posted, and reports are written only to `reportsOut`.
        public var isReplay: Bool { !apply && abs(asOf - Timestamp.now()) > Self.replaySlackMs }
    }

    public struct Outcome: Sendable {
        public var ingest: IngestResult
        public var enforcement: EnforcementResult
        /// Threshold crossings recorded for the first time by this run.
        public var alerts: [Alert]
        /// Duplicates, retry loops and runaway keys in the month holding the audit's clock.
        public var waste: WasteResult
        /// Alerts posted to the webhook (this run's and earlier ones that could not be posted then).
        public var webhook: WebhookDelivery
        /// Seconds spent after the ingest: waste, budgets, the list, alerts, reallocation, the journal.
        public var evaluationSeconds: Double
        /// The report folders written under `audit.reports_dir`.
        public var reports: ReportPublication
        /// Seconds spent writing them.
        public var reportSeconds: Double
        public var ledgerPath: String
        /// Price entries skipped because a price could not be held exactly (`PriceBook.warnings`): their models stay
        /// unpriced until a config price covers them.
        public var priceWarnings: [String] = []
        /// Calls priced again because a price appeared or changed (`Repricing`): one line per model, as journalled.
        public var repriced: [String] = []
        /// The run was a replay (`Options.isReplay`): what it reports is what it would have done; nothing live changed.
        public var replay = false
    }

    public static func run(
        config: Config, options: Options, progress: (IngestProgress) -> Void = { _ in }
    ) async throws(AuditError) -> Outcome {
        let prices: PriceBook
        do { prices = try PriceBook(config: config) } catch {
            throw AuditError(.config, "pricing.litellm_file: \(error.message)", cause: error)
        }
        mapLargeBlocksApart()
        let (lock, ledger) = try Ledger.openLocked(config)
        defer { lock.release() }
        let ingestOptions = Ingest.Options(includeOpen: options.includeOpen, asOf: options.asOf)
        let replay = options.isReplay
        let ingest = try await Ingest.run(ledger: ledger, config: config, prices: prices, options: ingestOptions, progress: progress)
        let asOf = options.asOf

        /// Everything after the ingest that writes the ledger, timed; the list file is written only when `live`.
        func evaluate(live: Bool) throws(AuditError) -> Outcome {
            let repricing = try Repricing.run(ledger: ledger, config: config, prices: prices, asOf: asOf)
            ledger.releaseMemory()
            releaseFreedMemory()
            let evaluationStart = ContinuousClock.now
            let waste = try currentWaste(ledger: ledger, config: config, asOf: asOf)
            let enforcement = try Enforcement.run(ledger: ledger, config: config, asOf: asOf, waste: waste, writeList: live)
            let alerts = try Alerts.record(ledger: ledger, config: config, enforcement: enforcement, asOf: asOf)
            releaseFreedMemory()
            return Outcome(
                ingest: ingest, enforcement: enforcement, alerts: alerts, waste: waste, webhook: WebhookDelivery(),
                evaluationSeconds: (ContinuousClock.now - evaluationStart).seconds,
                reports: ReportPublication(written: [], latest: ""), reportSeconds: 0, ledgerPath: ledger.path,
                priceWarnings: prices.warnings, repriced: repricing.changes, replay: !live)
        }
        /// The reports, last, so that they show this run's alerts and webhook deliveries.
        func publish(into outcome: inout Outcome, folder: String?) throws(AuditError) {
            let reportStart = ContinuousClock.now
            outcome.reports = try ReportPublishing.publish(ledger: ledger, config: config, asOf: asOf, folder: folder)
            outcome.reportSeconds = (ContinuousClock.now - reportStart).seconds
        }

        if replay {
            // Evaluated in a transaction that is rolled back: the run says what it would do and leaves no trace.
            return try ledger.rehearse { () throws(AuditError) in
                var outcome = try evaluate(live: false)
                if let out = options.reportsOut { try publish(into: &outcome, folder: out) }
                return outcome
            }
        }
        var outcome = try evaluate(live: true)
        outcome.webhook = try await AlertWebhook.deliver(
            ledger: ledger, config: config, environment: options.environment, currency: config.currency,
            limits: options.webhookLimits)
        try publish(into: &outcome, folder: options.reportsOut)
        return outcome
    }

    /// Hands the memory a phase freed back to the system. glibc keeps freed memory for reuse, in an arena per thread
    /// that allocated it, so the ingest's parse buffers would otherwise stay resident through the waste scan, and the
    /// scan's tables through the reports.
    static func releaseFreedMemory() {
        tally_release_free_memory()
    }

    /// Has blocks of 4 MiB and more (the waste scan's tables and arrays, the report's pieces) come straight from the
    /// system and go straight back when freed. glibc would otherwise raise that threshold each time such a block is
    /// freed, and the scan's arrays, which grow by doubling, would then leave their old buffers inside its heap: about
    /// 60 MB of resident memory at 10 M events.
    public static func mapLargeBlocksApart() {
        tally_map_blocks_from(4 << 20)
    }

    /// Waste in the calendar month (in `audit.timezone`) that holds `asOf`, up to `asOf`.
    static func currentWaste(ledger: Ledger, config: Config, asOf: Int64) throws(AuditError) -> WasteResult {
        var calendar = try LocalCalendar.audit(config)
        let month = Period.month(containing: calendar.day(of: asOf))
        return try WasteScan.run(ledger: ledger, config: config, from: calendar.start(ofDay: month.firstDay), to: asOf, label: month.label)
    }
}
