import ArgumentParser
import Auditor
import Foundation
import TallyCommand
import TallyCore
import TallyLedger
import UsageLog

/// `tally keys`: virtual keys.
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, revoke and restore virtual keys.",
        subcommands: [New.self, Revoke.self, Restore.self]
    )

    /// `tally keys revoke ID --reason TEXT [--until TIME]`: refuse a key now, recorded in the ledger.
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key now: recorded in the ledger, and the revocation list is rewritten at once.",
            discussion: "The collector refuses the key (403) within its reload interval. `tally keys restore` lifts it."
        )

        @OptionGroup var config: ConfigOption

        @Argument(help: "The key's id.")
        var id: String

        @Option(name: .long, help: "Why, shown to the application in the refusal.")
        var reason: String

        @Option(name: .long, help: "When the revocation ends (RFC 3339); default: until restored.")
        var until: String?

        @Option(name: .long, help: "Seconds to wait for an audit that holds the ledger (default 60).")
        var wait: Int = 60

        func validate() throws {
            guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason must not be empty") }
            if let until, Timestamp.parse(until) == nil {
                throw ValidationError("--until must be an RFC 3339 time such as 2026-12-01T00:00:00Z")
            }
        }

        func run() async throws {
            try await runReportingFailures {
                let loaded = try config.load()
                let decision = KeyDecision(
                    key: id, action: .revoke, reason: reason, until: until.flatMap { Timestamp.parse($0) },
                    at: Timestamp.now(), by: KeyDecisions.currentUser())
                let result = try KeyDecisions.record(decision, config: loaded, wait: .seconds(max(0, wait)))
                if let why = result.rebuilt {
                    printError("tally keys revoke: the list on disk could not be read (\(why)); rebuilt from the ledger")
                }
                print(
                    "tally keys revoke: \(id) revoked\(until.map { " until \($0)" } ?? " until restored"); \(result.path) now lists \(counted(result.list.entries.count, "key"))"
                )
            }
        }
    }

    /// `tally keys restore ID`: lift a manual revocation.
    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift a manual revocation of a key (budget and expiry revocations follow the budgets and the config).",
            discussion: "Recorded in the ledger; the revocation list is rewritten at once."
        )

        @OptionGroup var config: ConfigOption

        @Argument(help: "The key's id.")
        var id: String

        @Option(name: .long, help: "Why, for the record.")
        var reason: String = "restored"

        @Option(name: .long, help: "Seconds to wait for an audit that holds the ledger (default 60).")
        var wait: Int = 60

        func run() async throws {
            try await runReportingFailures {
                let loaded = try config.load()
                let decision = KeyDecision(
                    key: id, action: .restore, reason: reason, until: nil, at: Timestamp.now(), by: KeyDecisions.currentUser())
                let result = try KeyDecisions.record(decision, config: loaded, wait: .seconds(max(0, wait)))
                let still = result.list.entries.first { $0.keyID == id }
                print("tally keys restore: \(id) restored" + (still.map { "; still revoked: \($0.reason)" } ?? ""))
            }
        }
    }

    /// `tally keys new --id ID`: a fresh secret, shown once, and the config entry that holds only its hash.
    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new",
            abstract: "Print a fresh virtual key secret once, and the config entry that holds only its SHA-256."
        )

        @Option(name: .long, help: "The key's id, as reports and logs will name it.")
        var id: String

        @Option(name: .long, help: "The user the key belongs to.")
        var user: String?

        @Option(name: .long, help: "The project the key bills to.")
        var project: String?

        func validate() throws {
            guard !id.isEmpty, id.utf8.allSatisfy({ KeySecret.isIDByte($0) }), id != "unknown" else {
                throw ValidationError("--id must be letters, digits, '.', '_' or '-' (and not 'unknown')")
            }
        }

        func run() async throws {
            var generator = SystemRandomNumberGenerator()
            let secret = KeySecret.generate(using: &generator)
            var entry = "  - {id: \(id), sha256: \(Hex.sha256(secret))"
            if let user { entry += ", user: \(user)" }
            if let project { entry += ", project: \(project)" }
            if user == nil, project == nil { entry += ", user: CHANGE-ME" }
            entry += "}"
            print(
                """
                Secret for key \(id) (shown once: give it to the application now; Tally keeps only its hash):
                \(secret)

                Add this entry under keys: in the config, then reload the collector:
                \(entry)
                """)
        }
    }
}

/// Virtual key secrets: `tk-` and 44 base62 characters (262 bits from the system's secure generator).
enum KeySecret {
    static let alphabet: [UInt8] = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    static let length = 44

    static func generate(using generator: inout some RandomNumberGenerator) -> String {
        var out: [UInt8] = Array("tk-".utf8)
        while out.count < 3 + length {
            // Rejection sampling keeps every character uniform: 248 = 4 × 62.
            let byte = UInt8(truncatingIfNeeded: generator.next())
            if byte < 248 { out.append(alphabet[Int(byte % 62)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isIDByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F || b == 0x2E
    }
}
