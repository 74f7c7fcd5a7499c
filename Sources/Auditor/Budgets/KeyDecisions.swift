import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Records manual revoke and restore decisions and rewrites the revocation list at once, so the collector acts on
/// them within its reload interval instead of at the next cron run.
public enum KeyDecisions {
    /// Records `decision` and rewrites the list. An audit holding the ledger is waited for, up to `wait`: the emergency
    /// path must get through while a cron audit runs.
    public static func record(
        _ decision: KeyDecision, config: Config, wait: Duration = .seconds(60)
    ) throws(AuditError) -> EnforcementResult {
        guard config.keys.contains(where: { $0.id == decision.key }) else {
            throw AuditError(.usage, "the config has no key '\(decision.key)': only keys listed under `keys:` can be revoked or restored")
        }
        let (lock, ledger) = try Ledger.openLocked(config, purpose: "tally keys \(decision.action.rawValue)", wait: wait)
        defer { lock.release() }
        try ledger.write { transaction in
            try transaction.record(decision)
            try transaction.appendJournal(
                at: decision.at, kind: "decision", subject: "key \(decision.key)",
                detail: "\(decision.action.rawValue) by \(decision.by): \(decision.reason)"
                    + (decision.until.map { " (until \(Timestamp.format(milliseconds: $0)))" } ?? ""))
        }
        return try Enforcement.run(
            ledger: ledger, config: config, asOf: decision.at, restoring: decision.action == .restore ? decision.key : nil)
    }

    /// The login name of whoever runs the command, for the record.
    public static func currentUser() -> String {
        if let name = getenv("SUDO_USER") ?? getenv("USER") ?? getenv("LOGNAME") { return String(cString: name) }
        return "uid \(getuid())"
    }
}
