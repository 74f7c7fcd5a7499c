import AsyncHTTPClient
import Collector
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import TallyConfig
import TallyCore
import UsageLog

/// A mock upstream and a real collector in this process, on free ports, with their own temporary folder.
struct Harness: Sendable {
    static let aliceSecret = "tk-test-alice-0123456789abcdefghijklmnopqrstuv"
    static let bobSecret = "tk-test-bob-0123456789abcdefghijklmnopqrstuvwxy"
    static let privateSecret = "tk-test-private-0123456789abcdefghijklmnopqrs"
    static let expiredSecret = "tk-test-expired-0123456789abcdefghijklmnopqrs"
    /// A key whose entry allows the `files` endpoints.
    static let filesSecret = "tk-test-files-0123456789abcdefghijklmnopqrstu"

    let folder: String
    let collectorPort: Int
    let mock: MockUpstream
    let client: HTTPClient
    let collector: RunningCollector

    var base: String { "http://127.0.0.1:\(collectorPort)" }
    var revocationPath: String { folder + "/revoked.tsv" }

    static func sha(_ secret: String) -> String { Hex.sha256(secret) }

    static func config(folder: String, mockPort: Int, extra: String, providers: String = "") -> String {
        """
        default_provider: openai
        providers:
          - {name: openai, kind: openai, base_url: "http://127.0.0.1:\(mockPort)", api_key_env: MOCK_OPENAI_KEY, headers: {OpenAI-Organization: org-tally}}
          - {name: anthropic, kind: anthropic, base_url: "http://127.0.0.1:\(mockPort)", api_key_env: MOCK_ANTHROPIC_KEY, allow: [batches]}
          - {name: gemini, kind: gemini, base_url: "http://127.0.0.1:\(mockPort)", api_key_env: MOCK_GEMINI_KEY}
          - {name: azure, kind: azure, base_url: "http://127.0.0.1:\(mockPort)", api_key_env: MOCK_AZURE_KEY}
        \(providers.replacing("$FOLDER", with: folder))
        orgs: [{id: acme}]
        teams: [{id: search, org: acme}]
        users: [{id: alice, team: search}, {id: bob, team: search}]
        keys:
          - {id: k-alice, sha256: \(sha(aliceSecret)), user: alice}
          - {id: k-bob, sha256: \(sha(bobSecret)), user: bob}
          - {id: k-private, sha256: \(sha(privateSecret)), user: bob, privacy: true}
          - {id: k-expired, sha256: \(sha(expiredSecret)), user: bob, expires: 2020-01-01T00:00:00Z}
          - {id: k-files, sha256: \(sha(filesSecret)), user: alice, allow: [files]}
        collector:
          id: test
          listen: 127.0.0.1:0
          log_dir: \(folder)/log
          revocations: \(folder)/revoked.tsv
          reload_interval: 100ms
          fsync: always
          preview_chars: 60
        \(extra.replacing("$FOLDER", with: folder))
        """
    }

    /// Starts both, runs `body`, stops the collector gracefully, and returns every event it logged.
    static func run(
        extraConfig: String = "", extraProviders: String = "", environment extraEnvironment: [String: String] = [:],
        prepare: (String) throws -> Void = { _ in }, _ body: @Sendable (Harness) async throws -> Void
    ) async throws -> [UsageEvent] {
        let folder = NSTemporaryDirectory() + "tally-collector-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let mock = MockUpstream()
        let logger: Logger = {
            var logger = Logger(label: "test")
            logger.logLevel = .warning
            return logger
        }()
        try prepare(folder)
        let environment = [
            "MOCK_OPENAI_KEY": MockUpstream.realOpenAIKey, "MOCK_ANTHROPIC_KEY": MockUpstream.realAnthropicKey,
            "MOCK_GEMINI_KEY": MockUpstream.realGeminiKey, "MOCK_AZURE_KEY": MockUpstream.realAzureKey,
            "TALLY_HASH_SECRET": "test-hash-secret",
        ].merging(extraEnvironment) { _, new in new }
        try await withThrowingTaskGroup(of: Void.self) { group in
            let (mockPorts, mockPortContinuation) = AsyncStream.makeStream(of: Int.self)
            group.addTask { try await mock.run { mockPortContinuation.yield($0) } }
            var portIterator = mockPorts.makeAsyncIterator()
            guard let mockPort = await portIterator.next() else { return }
            let config = try Config.parse(
                yaml: Self.config(folder: folder, mockPort: mockPort, extra: extraConfig, providers: extraProviders))

            let (collectors, collectorContinuation) = AsyncStream.makeStream(of: RunningCollector.self)
            group.addTask {
                try await CollectorServer.run(config: config, environment: environment, logger: logger, gracePeriod: .seconds(30)) {
                    collectorContinuation.yield($0)
                }
            }
            var collectorIterator = collectors.makeAsyncIterator()
            guard let collector = await collectorIterator.next() else { return }
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            let harness = Harness(folder: folder, collectorPort: collector.port, mock: mock, client: client, collector: collector)
            do {
                try await body(harness)
            } catch {
                await collector.shutdown()
                try? await client.shutdown()
                throw error
            }
            await collector.shutdown()
            try await client.shutdown()
            // The collector's task ends once it has drained; then stop the mock.
            try await group.next()
            group.cancelAll()
        }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        return try events(in: folder + "/log")
    }

    static func events(in root: String) throws -> [UsageEvent] {
        guard FileManager.default.fileExists(atPath: root) else { return [] }
        var events: [UsageEvent] = []
        for segment in try LogDirectory.segments(root: root) {
            try SegmentReader.read(path: segment.path) { _, line in events.append(try UsageEvent(jsonLine: line)) }
        }
        return events
    }

    /// One call through the collector; returns status, headers and the whole body.
    /// `keyHeader` names the header the key goes in instead (`x-goog-api-key`, `api-key`).
    func call(
        _ path: String, body: String, key: String? = aliceSecret, anthropicStyle: Bool = false, keyHeader: String? = nil,
        headers extra: [String: String] = [:], testID: String = UUID().uuidString, method: HTTPMethod = .POST
    ) async throws -> (status: Int, body: [UInt8], contentType: String) {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "x-test-id", value: testID)
        if let key {
            if let keyHeader {
                request.headers.add(name: keyHeader, value: key)
            } else if anthropicStyle {
                request.headers.add(name: "x-api-key", value: key)
                request.headers.add(name: "anthropic-version", value: "2023-06-01")
            } else {
                request.headers.add(name: "authorization", value: "Bearer \(key)")
            }
        }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: .seconds(30))
        var bytes: [UInt8] = []
        for try await chunk in response.body { bytes.append(contentsOf: chunk.readableBytesView) }
        return (Int(response.status.code), bytes, response.headers.first(name: "content-type") ?? "")
    }

    /// A GET on one of the collector's own paths; returns status and body text.
    func get(_ path: String) async throws -> (status: Int, text: String) {
        var request = HTTPClientRequest(url: base + path)
        request.method = .GET
        let response = try await client.execute(request, timeout: .seconds(10))
        var text = ""
        for try await chunk in response.body { text += String(buffer: chunk) }
        return (Int(response.status.code), text)
    }

    /// Writes a revocation list the way the auditor does (temporary file, then rename).
    func writeRevocations(_ list: RevocationList) throws {
        let temporary = revocationPath + ".tmp"
        try Data(list.rendered()).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, revocationPath) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
}
