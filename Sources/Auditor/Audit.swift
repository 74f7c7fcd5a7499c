import TallyConfig
import UsageLog

/// One `tally audit` run: take the lock, open the ledger, ingest what is new, then evaluate budgets and expiries and
/// write the revocation list, all under the same lock.
public enum Audit {
    public struct Options: Sendable {
        /// Also read the complete lines of segments still being written.
        public var includeOpen = false
        /// The audit's clock, milliseconds since the epoch; replays and tests set it, cron leaves it at now.
        public var asOf: Int64

        public init(includeOpen: Bool = false, asOf: Int64 = Timestamp.now()) {
            self.includeOpen = includeOpen
            self.asOf = asOf
        }
    }

    public struct Outcome: Sendable {
        public var ingest: IngestResult
        public var enforcement: EnforcementResult
        /// Threshold crossings recorded for the first time by this run.
        public var alerts: [Alert]
        public var ledgerPath: String
    }

    public static func run(config: Config, options: Options, progress: (IngestProgress) -> Void = { _ in }) async throws(AuditError) -> Outcome {
        let ledgerPath = config.resolve(config.audit.db)
        let prices: PriceBook
        do { prices = try PriceBook(config: config) } catch {
            throw AuditError(.config, "pricing.litellm_file: \(error.message)", cause: error)
        }
        try Ledger.makeFolder(for: ledgerPath)
        let lock = try AuditLock(ledgerPath: ledgerPath)
        defer { lock.release() }
        let ledger = try Ledger(path: ledgerPath)
        let ingestOptions = Ingest.Options(includeOpen: options.includeOpen, asOf: options.asOf)
        let ingest = try await Ingest.run(ledger: ledger, config: config, prices: prices, options: ingestOptions, progress: progress)
        let enforcement = try Enforcement.run(ledger: ledger, config: config, asOf: options.asOf)
        let alerts = try Alerts.record(ledger: ledger, config: config, statuses: enforcement.statuses, asOf: options.asOf)
        return Outcome(ingest: ingest, enforcement: enforcement, alerts: alerts, ledgerPath: ledgerPath)
    }
}
