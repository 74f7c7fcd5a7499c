import TallyConfig
import TallyLedger

extension Ledger {
    /// The config's ledger for writing, under the audit lock: creates its folder and file if needed. Hold the lock
    /// (and release it) for as long as the ledger is written.
    static func openLocked(
        _ config: Config, purpose: String = "tally audit", wait: Duration = .zero
    ) throws(AuditError) -> (lock: AuditLock, ledger: Ledger) {
        let path = config.resolve(config.audit.db)
        try makeFolder(for: path)
        let lock = try AuditLock(ledgerPath: path, purpose: purpose, wait: wait)
        return (lock, try Ledger(path: path))
    }

    /// The config's ledger for reading (reports, `tally realloc list`, `tally verify`).
    public static func reading(_ config: Config) throws(AuditError) -> Ledger {
        try Ledger(path: config.resolve(config.audit.db), readOnly: true)
    }
}
