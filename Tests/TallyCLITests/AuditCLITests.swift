import ArgumentParser
import Foundation
import GRDB
import Report
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyCLI
@testable import TallyLedger

/// `tally audit` and `tally report` as cron and finance use them: exit codes, a kill in the middle, re-runs.
@Suite("tally audit")
struct AuditCLITests {
    /// A copy of the demo config whose state lives in its own temp folder.
    struct Workspace {
        let root: String
        var configPath: String { root + "/tally.yaml" }
        var ledgerPath: String { root + "/tally.sqlite" }

        init(db: String = "tally.sqlite") throws {
            root = NSTemporaryDirectory() + "tally-cli-audit-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let demo = try String(contentsOfFile: CLITests.demo, encoding: .utf8)
            try demo.replacingOccurrences(of: "../../var/demo/tally.sqlite", with: root + "/" + db)
                .replacingOccurrences(of: "../../var/demo", with: root)
                .write(toFile: root + "/tally.yaml", atomically: true, encoding: .utf8)
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    func run(_ arguments: [String]) async -> Int32 { await CLITests().run(arguments) }

    /// The built `tally` executable, beside the test bundle.
    static var executable: String {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("tally").path
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/tally").standardized
            .path
    }

    func breakdown(config path: String) throws -> SpendBreakdown {
        let config = try Config.load(path: path)
        let ledger = try Ledger(path: config.resolve(config.audit.db), readOnly: true)
        return try AttributionQuery.breakdown(
            ledger: ledger, period: Period(firstDay: 0, lastDay: 100_000, label: "all"),
            by: [.team, .key, .model, .day], timezone: config.audit.timezone, currency: config.currency)
    }

    @Test func aKilledAuditFollowedByACleanRunGivesTheExactTotals() async throws {
        let w = try Workspace()
        defer { w.remove() }
        // More events than one ingest batch (`IngestWriter.batchEvents`), so that the ingest commits some segments while
        // others are still to be read: the kill below then lands inside the ingest, not after it.
        let total = 600_000
        #expect(
            await run([
                "synth", "--config", w.configPath, "--events", "\(total)", "--collectors", "6",
                "--end", "2026-11-20T00:00:00Z",
            ]) == 0)

        // Kill the audit with SIGKILL once it has committed some segments but not all.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = ["audit", "--config", w.configPath, "--quiet"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var committed = 0
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning, Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
            guard FileManager.default.fileExists(atPath: w.ledgerPath) else { continue }
            committed =
                (try? await DatabaseQueue(path: w.ledgerPath).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM segments") ?? 0 })
                ?? 0
            if committed >= 3 { break }
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the audit finished before it could be killed; make the input larger")

        #expect(await run(["audit", "--config", w.configPath, "--quiet"]) == 0)
        let recovered = try breakdown(config: w.configPath)

        // The same logs, ingested once into a fresh ledger.
        let fresh = try Workspace(db: "fresh.sqlite")
        defer { fresh.remove() }
        let freshConfig = try String(contentsOfFile: fresh.configPath, encoding: .utf8)
            .replacingOccurrences(of: "log_dir: " + fresh.root + "/log", with: "log_dir: " + w.root + "/log")
        try freshConfig.write(toFile: fresh.configPath, atomically: true, encoding: .utf8)
        #expect(await run(["audit", "--config", fresh.configPath, "--quiet"]) == 0)
        let once = try breakdown(config: fresh.configPath)

        // Once this failed (147,978 with one segment still `.jsonl`) and never again: what the folder held then.
        let listing = { () -> String in
            let files = FileManager.default.enumerator(atPath: w.root + "/log")?.compactMap { $0 as? String }.sorted() ?? []
            return "\(files.count) entries; not .jsonl.gz: \(files.filter { !$0.hasSuffix(".jsonl.gz") && $0.contains(".") })"
        }
        #expect(recovered.total.requests == Int64(total), "\(listing())")
        #expect(recovered == once, "\(listing())")
        let events: [Int] = try await DatabaseQueue(path: w.ledgerPath).read { db in
            try Int.fetchAll(db, sql: "SELECT count(*) FROM events")
        }
        #expect(events == [total])
    }

    @Test func exitCodesSayWhatHappened() async throws {
        let w = try Workspace()
        defer { w.remove() }
        // Nothing but bad lines: 65, and the lines are kept in quarantine.
        try FileManager.default.createDirectory(atPath: w.root + "/log/c1", withIntermediateDirectories: true)
        try "not json\n{\"v\":1}\n".write(toFile: w.root + "/log/c1/20261110T000000Z-000001.jsonl", atomically: true, encoding: .utf8)
        try Gzip.compressFile(
            source: w.root + "/log/c1/20261110T000000Z-000001.jsonl", destination: w.root + "/log/c1/20261110T000000Z-000001.jsonl.gz")
        try FileManager.default.removeItem(atPath: w.root + "/log/c1/20261110T000000Z-000001.jsonl")
        #expect(await run(["audit", "--config", w.configPath, "--quiet"]) == 65)
        let quarantined: [Int] = try await DatabaseQueue(path: w.ledgerPath).read { db in
            try Int.fetchAll(db, sql: "SELECT count(*) FROM quarantine")
        }
        #expect(quarantined == [2])
        // A re-run with nothing new is not an error.
        #expect(await run(["audit", "--config", w.configPath, "--quiet"]) == 0)

        // Another audit holds the lock: 75.
        let lock = try AuditLock(ledgerPath: w.ledgerPath)
        #expect(await run(["audit", "--config", w.configPath, "--quiet"]) == 75)
        lock.release()

        // Usage mistakes: 64.
        #expect(await run(["report", "attribution", "--config", w.configPath, "--period", "2026-13"]) == 64)
        #expect(await run(["report", "attribution", "--config", w.configPath, "--by", "team,colour"]) == 64)
        #expect(await run(["audit", "--config", w.configPath, "--as-of", "yesterday"]) == 64)
        #expect(
            await run(["report", "attribution", "--config", w.configPath, "--period", "2026-11", "--by", "team,model", "--format", "csv"])
                == 0)

        // A missing log directory is an I/O error that names it: 74.
        try FileManager.default.removeItem(atPath: w.root + "/log")
        #expect(await run(["audit", "--config", w.configPath, "--quiet"]) == 74)
    }

    @Test func verifyAndReallocExitCodes() async throws {
        let w = try Workspace()
        defer { w.remove() }
        // No ledger yet: an I/O error that says to run the audit first.
        #expect(await run(["verify", "--config", w.configPath]) == 74)
        #expect(
            await run([
                "synth", "--config", w.configPath, "--events", "20000", "--days", "30", "--seed", "3", "--end", "2026-11-22T00:00:00Z",
            ]) == 0)
        #expect(await run(["audit", "--config", w.configPath, "--quiet", "--apply", "--as-of", "2026-11-22T00:00:00Z"]) == 0)
        #expect(await run(["verify", "--config", w.configPath]) == 0)
        #expect(await run(["realloc", "list", "--config", w.configPath]) == 0)
        // A proposal that does not stand is a usage error.
        #expect(await run(["realloc", "approve", "2026-11:nobody:else", "--config", w.configPath]) == 64)
        // An altered journal row: verify exits 1.
        try await DatabaseQueue(path: w.ledgerPath).write { db in try db.execute(sql: "UPDATE journal SET detail = 'edited' WHERE id = 1") }
        #expect(await run(["verify", "--config", w.configPath]) == 1)
    }
}
