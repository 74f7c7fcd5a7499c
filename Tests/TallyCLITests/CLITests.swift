import ArgumentParser
import Crypto
import Foundation
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import TallyCLI
@testable import TallyLedger

/// The CLI through its real argument parsing.
@Suite("tally CLI")
struct CLITests {
    static let demo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../fixtures/demo/tally.yaml").standardized.path

    /// Runs `tally <arguments>` in-process; returns the exit code.
    func run(_ arguments: [String]) async -> Int32 {
        do {
            var command = try Tally.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            return Tally.exitCode(for: error).rawValue
        }
    }

    @Test func checkConfigAcceptsTheDemo() async {
        #expect(await run(["check-config", "--config", Self.demo]) == 0)
    }

    @Test func checkConfigExits78OnABadFile() async throws {
        let path = NSTemporaryDirectory() + "tally-bad-\(UUID().uuidString.prefix(8)).yaml"
        try "currency: USD\nteams: [{id: t, org: missing}]\nbogus: 1\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(await run(["check-config", "--config", path]) == 78)
        #expect(await run(["check-config", "--config", path + ".absent"]) == 78)
    }

    @Test func usageErrorsExit64() async {
        #expect(await run(["check-config"]) == 64)
        #expect(await run(["synth", "--config", Self.demo, "--events", "-1", "--out", "/tmp/x"]) == 64)
        #expect(await run(["no-such-command"]) == 64)
    }

    @Test func keySecretsAreRandomAndHashMatches() {
        var generator = SystemRandomNumberGenerator()
        let a = KeySecret.generate(using: &generator)
        let b = KeySecret.generate(using: &generator)
        #expect(a != b)
        #expect(a.hasPrefix("tk-") && a.count == 3 + 44)
        #expect(a.dropFirst(3).allSatisfy { $0.isLetter || $0.isNumber })
        let expected = SHA256.hash(data: Array(a.utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(Hex.sha256(a) == expected)
    }

    /// The entry `keys new` prints is accepted by the config loader as is.
    @Test func printedKeyEntryLoads() throws {
        var generator = SystemRandomNumberGenerator()
        let secret = KeySecret.generate(using: &generator)
        let yaml = """
            orgs: [{id: o}]
            teams: [{id: t, org: o}]
            users: [{id: u, team: t}]
            keys:
              - {id: k-new, sha256: \(Hex.sha256(secret)), user: u}
            """
        let config = try Config.parse(yaml: yaml)
        #expect(config.keys.first?.sha256 == Hex.sha256(secret))
    }
}
