#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GRDB
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// A person's decision about a key (`tally keys revoke`, `tally keys restore`), kept in the ledger's `key_decisions`.
public struct KeyDecision: Sendable, Equatable {
    public enum Action: String, Sendable {
        /// Refuse the key until `until` (or until restored).
        case revoke
        /// Lift earlier manual revocations of the key, including a `manual` entry written into the list by hand.
        case restore
    }

    public var key: String
    public var action: Action
    public var reason: String
    public var until: Int64?
    public var at: Int64
    /// Who decided: the login name of whoever ran the command.
    public var by: String

    public init(key: String, action: Action, reason: String, until: Int64?, at: Int64, by: String) {
        self.key = key
        self.action = action
        self.reason = reason
        self.until = until
        self.at = at
        self.by = by
    }
}

/// Records manual revoke and restore decisions and rewrites the revocation list at once, so the collector acts on
/// them within its reload interval instead of at the next cron run.
public enum KeyDecisions {
    public static func record(_ decision: KeyDecision, config: Config) throws(AuditError) -> EnforcementResult {
        guard config.keys.contains(where: { $0.id == decision.key }) else {
            throw AuditError(.usage, "the config has no key '\(decision.key)': only keys listed under `keys:` can be revoked or restored")
        }
        let (lock, ledger) = try Ledger.openLocked(config, purpose: "tally keys \(decision.action.rawValue)")
        defer { lock.release() }
        try ledger.access { db in
            try db.inTransaction {
                try db.execute(sql: "INSERT INTO key_decisions (key, action, reason, until, at, by) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [decision.key, decision.action.rawValue, decision.reason, decision.until, decision.at, decision.by])
                try Journal.append(db, at: decision.at, kind: "decision", subject: "key \(decision.key)",
                                   detail: "\(decision.action.rawValue) by \(decision.by): \(decision.reason)"
                                       + (decision.until.map { " (until \(Timestamp.format(milliseconds: $0)))" } ?? ""))
                return .commit
            }
        }
        return try Enforcement.run(ledger: ledger, config: config, asOf: decision.at)
    }

    /// Each key's latest decision.
    static func latest(_ ledger: Ledger) throws(AuditError) -> [String: KeyDecision] {
        try ledger.access { db in
            var result: [String: KeyDecision] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT key, action, reason, until, at, by FROM key_decisions ORDER BY id")
            while let row = try rows.next() {
                guard let action = KeyDecision.Action(rawValue: row[1]) else { continue }
                result[row[0]] = KeyDecision(key: row[0], action: action, reason: row[2], until: row[3], at: row[4], by: row[5])
            }
            return result
        }
    }

    /// The login name of whoever runs the command, for the record.
    public static func currentUser() -> String {
        if let name = getenv("SUDO_USER") ?? getenv("USER") ?? getenv("LOGNAME") { return String(cString: name) }
        return "uid \(getuid())"
    }
}
