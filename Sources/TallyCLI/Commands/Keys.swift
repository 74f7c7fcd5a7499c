import ArgumentParser
import UsageLog

/// `tally keys`: virtual keys.
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create virtual keys.",
        subcommands: [New.self]
    )

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
            print("""
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
