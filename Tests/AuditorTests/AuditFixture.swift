import Foundation
import GRDB
import Report
import TallyConfig
import TallyCore
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// A temp folder with a small config, a log directory and a ledger path; each test gets its own.
struct AuditFixture {
    let root: String
    let config: Config

    static let yaml = """
        currency: USD
        default_provider: openai
        providers:
          - {name: openai, kind: openai, base_url: "http://127.0.0.1:9", api_key_env: OPENAI_API_KEY}
        orgs:
          - {id: acme}
        teams:
          - {id: search, org: acme}
          - {id: support, org: acme}
        users:
          - {id: alice, team: search}
          - {id: dan, team: support}
        projects:
          - {id: ranking, team: search}
        keys:
          - {id: k-alice, sha256: 05ef46ef3bf75c23f8325bf380d2e87f16654cbe9c16237722c46ed7c96e2006, user: alice, project: ranking}
          - {id: k-dan, sha256: 011a2419fe707d8ef9099b0cb644cd5aebaa09664115244fd23c48b41c0dba55, user: dan}
        pricing:
          models:
            - {model: m1, input: 1.00, output: 2.00, cached_input: 0.50, cache_write: 1.25, reasoning: 4.00}
            - {model: m1, input: 1.50, output: 2.00, cached_input: 0.50, cache_write: 1.25, reasoning: 4.00, from: 2026-11-15}
            - {model: m2, input: 0.15, output: 0.60}
        collector:
          id: c1
          log_dir: log
        audit:
          db: ledger/tally.sqlite
          timezone: UTC
        """

    init(yaml: String = AuditFixture.yaml) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("tally-audit-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root + "/log/c1", withIntermediateDirectories: true)
        try yaml.write(toFile: root + "/tally.yaml", atomically: true, encoding: .utf8)
        config = try Config.load(path: root + "/tally.yaml")
    }

    /// The same folder with a new config text (a raised budget, another timezone).
    func reconfigured(_ yaml: String) throws -> AuditFixture {
        try yaml.write(toFile: root + "/tally.yaml", atomically: true, encoding: .utf8)
        return AuditFixture(root: root, config: try Config.load(path: root + "/tally.yaml"))
    }

    func outcome(asOf: String) async throws -> Audit.Outcome {
        try await Audit.run(config: config, options: Audit.Options(asOf: Timestamp.parse(asOf)!, apply: true))
    }

    init(root: String, config: Config) {
        self.root = root
        self.config = config
    }

    var ledgerPath: String { root + "/ledger/tally.sqlite" }

    /// A v1 line for a call at `ts` with the given usage.
    static func line(
        id: String? = nil, ts: String, key: String = "k-alice", model: String = "m1",
        outcome: UsageEvent.Outcome = .ok, status: Int = 200, usage: UsageEvent.Usage?, user: String? = nil,
        tags: [String: String] = [:], prompt: String? = nil, sim: UInt64? = nil
    ) -> String {
        UsageEvent(
            id: id ?? EventID.make(milliseconds: Timestamp.parse(ts)!), timestamp: Timestamp.parse(ts)!, collector: "c1", key: key,
            provider: "openai", endpoint: .chatCompletions,
            model: model, status: status, outcome: outcome, stream: false, usage: usage,
            promptHash: prompt.map { Hex.sha256($0) },
            promptSim: sim ?? prompt.map { UInt64(Hex.sha256("sim " + $0).prefix(16), radix: 16)! },
            user: user, tags: tags
        ).jsonLine
    }

    /// Writes `lines` as a segment of collector `collector`: gzipped (closed) unless `open`.
    @discardableResult
    func segment(_ lines: [String], collector: String = "c1", stem: String = "20261110T000000Z-000001", open: Bool = false) throws -> String
    {
        let folder = root + "/log/" + collector
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let plain = folder + "/" + stem + ".jsonl"
        try lines.joined().write(toFile: plain, atomically: false, encoding: .utf8)
        if open { return plain }
        try Gzip.compressFile(source: plain, destination: plain + ".gz")
        try FileManager.default.removeItem(atPath: plain)
        return plain + ".gz"
    }

    func audit(includeOpen: Bool = false, asOf: String = "2026-11-30T00:00:00Z") async throws -> IngestResult {
        try await Audit.run(config: config, options: Audit.Options(includeOpen: includeOpen, asOf: Timestamp.parse(asOf)!, apply: true))
            .ingest
    }

    func breakdown(_ period: String = "2026-11", by: String = "team") throws -> SpendBreakdown {
        let ledger = try Ledger(path: ledgerPath, readOnly: true)
        return try AttributionQuery.breakdown(
            ledger: ledger, period: try Period(parsing: period), by: try SpendDimension.list(by),
            timezone: config.audit.timezone, currency: config.currency)
    }

    func query<T: DatabaseValueConvertible>(_ sql: String) throws -> [T] {
        try DatabaseQueue(path: ledgerPath).read { db in try T.fetchAll(db, sql: sql) }
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}
