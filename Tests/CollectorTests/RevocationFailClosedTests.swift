import Foundation
import Logging
import Synchronization
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Collector

/// The revocation list fails closed (`docs/revocations.md`): a list that cannot be read never lifts revocations, and
/// a collector that has no list it can trust refuses calls rather than serve keys that may be revoked.
@Suite("Revocations fail closed")
struct RevocationFailClosedTests {
    static let bob = Key(id: "k-bob", sha256: Hex.sha256("tk-bob-secret"), user: "bob")
    static let revoked = RevocationList(entries: [.init(keyID: "k-bob", reason: "manual: left the company", until: nil)])

    struct Fixture {
        let folder = NSTemporaryDirectory() + "tally-revocations-\(UUID().uuidString.prefix(8))"
        var listPath: String { folder + "/list/revoked.tsv" }
        var lastGoodPath: String { folder + "/log/.revoked.last-good.tsv" }
        let metrics = CollectorMetrics()

        init() throws {
            try FileManager.default.createDirectory(atPath: folder + "/list", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: folder + "/log", withIntermediateDirectories: true)
        }

        /// A collector's view as it starts: new key state, and the watcher's first look.
        func start() -> (KeyState, RevocationWatcher) {
            let keys = KeyState(keys: [RevocationFailClosedTests.bob])
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let watcher = RevocationWatcher(
                path: listPath, lastGoodPath: lastGoodPath, interval: .seconds(1), keys: keys, metrics: metrics, logger: logger)
            return (keys, watcher)
        }

        func write(_ bytes: [UInt8]) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: listPath + ".tmp"))
            guard rename(listPath + ".tmp", listPath) == 0 else { throw CocoaError(.fileWriteUnknown) }
        }

        var corrupt: [UInt8] {
            var text = RevocationList().rendered()
            text.append(contentsOf: "k-alice\tmanual: forged\t-\n".utf8)
            return text
        }

        func remove() { try? FileManager.default.removeItem(atPath: folder) }
    }

    func isRevoked(_ keys: KeyState) -> Bool {
        if case .revoked = keys.verdict(secret: "tk-bob-secret", now: 0) { return true }
        return false
    }

    @Test func aNewInstallationRevokesNothing() throws {
        let f = try Fixture()
        defer { f.remove() }
        let (keys, watcher) = f.start()
        watcher.reload(previous: nil, force: true)
        #expect(keys.readiness == (true, "ready"))
        if case .ok = keys.verdict(secret: "tk-bob-secret", now: 0) {} else { Issue.record("bob should be served") }
    }

    @Test func failuresWhileRunningNeverLiftRevocations() throws {
        let f = try Fixture()
        defer { f.remove() }
        let (keys, watcher) = f.start()
        try f.write(Self.revoked.rendered())
        var stamp = watcher.reload(previous: nil, force: true)
        #expect(isRevoked(keys))
        #expect(FileManager.default.fileExists(atPath: f.lastGoodPath), "the last good copy is kept")

        // A hand-edited file (bad checksum): refused, the list stays.
        try f.write(f.corrupt)
        stamp = watcher.reload(previous: stamp, force: false)
        #expect(isRevoked(keys))
        // The file cannot be looked at (a path component is not a folder: ENOTDIR): the list stays.
        try FileManager.default.removeItem(atPath: f.folder + "/list")
        try Data("not a folder".utf8).write(to: URL(fileURLWithPath: f.folder + "/list"))
        stamp = watcher.reload(previous: stamp, force: false)
        #expect(isRevoked(keys))
        // The file is gone: a list existed, so it stays until a list says otherwise.
        try FileManager.default.removeItem(atPath: f.folder + "/list")
        try FileManager.default.createDirectory(atPath: f.folder + "/list", withIntermediateDirectories: true)
        stamp = watcher.reload(previous: stamp, force: false)
        #expect(isRevoked(keys))
        #expect(f.metrics.reloadFailures.load(ordering: .relaxed) == 3)
        // A list that lifts it does.
        try f.write(RevocationList().rendered())
        watcher.reload(previous: stamp, force: false)
        #expect(!isRevoked(keys))
    }

    @Test func aRestartWithAnUnreadableListStartsFromTheLastGoodCopy() throws {
        let f = try Fixture()
        defer { f.remove() }
        do {
            let (_, watcher) = f.start()
            try f.write(Self.revoked.rendered())
            watcher.reload(previous: nil, force: true)
        }
        try f.write(f.corrupt)
        let (keys, watcher) = f.start()
        watcher.reload(previous: nil, force: true)
        #expect(isRevoked(keys))
        #expect(keys.readiness.ready && keys.readiness.detail.contains("serving the last good copy"))
        // Deleted and restarted: still the last good copy, not "nothing revoked".
        try FileManager.default.removeItem(atPath: f.listPath)
        let (again, restarted) = f.start()
        restarted.reload(previous: nil, force: true)
        #expect(isRevoked(again))
    }

    @Test func withoutAnyGoodListCallsAreRefusedUntilOneAppears() throws {
        let f = try Fixture()
        defer { f.remove() }
        try f.write(f.corrupt)
        let (keys, watcher) = f.start()
        let stamp = watcher.reload(previous: nil, force: true)
        #expect(!keys.readiness.ready && keys.readiness.detail.contains("sha256 line does not match"))
        guard case .unavailable = keys.verdict(secret: "tk-bob-secret", now: 0) else {
            Issue.record("a key must not be served without a list")
            return
        }
        if case .unknown = keys.verdict(secret: "tk-someone-else", now: 0) {} else { Issue.record("unknown keys stay unknown") }
        try f.write(Self.revoked.rendered())
        watcher.reload(previous: stamp, force: false)
        #expect(keys.readiness == (true, "ready") && isRevoked(keys))
    }
    /// SIGHUP reads the config's keys again: a key `tally keys new` printed works without a restart, a removed one is
    /// unknown, and a config that no longer loads keeps the keys in force (counted).
    @Test func sighupReloadsTheConfiguredKeys() throws {
        let f = try Fixture()
        defer { f.remove() }
        let configPath = f.folder + "/tally.yaml"
        func config(_ keys: String) -> String {
            """
            providers: [{name: openai, kind: openai, base_url: "http://127.0.0.1:9", api_key_env: K}]
            orgs: [{id: acme}]
            teams: [{id: t, org: acme}]
            users: [{id: bob, team: t}, {id: carol, team: t}]
            keys:
            \(keys)
            """
        }
        try config("  - {id: k-bob, sha256: \(Hex.sha256("tk-bob-secret")), user: bob}").write(
            toFile: configPath, atomically: true, encoding: .utf8)
        let keys = KeyState(keys: [Self.bob])
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let watcher = RevocationWatcher(
            path: f.listPath, lastGoodPath: f.lastGoodPath, interval: .seconds(1), keys: keys, metrics: f.metrics, logger: logger,
            reloadKeys: CollectorServer.keysReader(path: configPath))
        watcher.reload(previous: nil, force: true)
        func verdict(_ secret: String) -> String {
            switch keys.verdict(secret: secret, now: 0) {
            case .ok(let key): "ok \(key.id)"
            case .unknown: "unknown"
            default: "other"
            }
        }
        #expect(verdict("tk-carol-secret") == "unknown")

        try config("  - {id: k-carol, sha256: \(Hex.sha256("tk-carol-secret")), user: carol}").write(
            toFile: configPath, atomically: true, encoding: .utf8)
        watcher.reloadConfiguredKeys()
        #expect(verdict("tk-carol-secret") == "ok k-carol")
        #expect(verdict("tk-bob-secret") == "unknown", "a key taken out of the config stops working")

        try "keys: [unclosed".write(toFile: configPath, atomically: true, encoding: .utf8)
        watcher.reloadConfiguredKeys()
        #expect(verdict("tk-carol-secret") == "ok k-carol", "a broken config keeps the keys in force")
        #expect(f.metrics.configReloadFailures.load(ordering: .relaxed) == 1)
    }
}

@Suite("Path normalisation")
struct PathNormalizerTests {
    @Test func decodesOnceAndRefusesWhatCouldBeReadTwoWays() {
        #expect(PathNormalizer.normalize("/openai/v1/chat/complet%69ons") == .success("/openai/v1/chat/completions"))
        #expect(
            PathNormalizer.normalize("/gemini/v1beta/models/gemini-2.5-pro:generateContent")
                == .success("/gemini/v1beta/models/gemini-2.5-pro:generateContent"))
        #expect(PathNormalizer.normalize("/") == .success("/"))
        for bad in [
            "", "x", "/a//b", "/a/", "/a/./b", "/a/../b", "/a%2Fb", "/a%2fb", "/a%5Cb", "/a%", "/a%4", "/a%zz", "/a%2525", "/a b", "/a%20b",
            "/é",
        ] {
            guard case .failure = PathNormalizer.normalize(bad) else {
                Issue.record("\(bad) should be refused")
                continue
            }
        }
    }

    @Test func aPlainPathIsTakenAsItIsOnlyWhenDecodingWouldKeepIt() {
        // The short way (`isPlain`) must never accept what the long way (`decode`) changes or refuses.
        var generator = SystemRandomNumberGenerator()
        let pieces = ["/", "/", ".", "a", "v1", "%", "%2F", "%41", ":", "é", " ", "-", "~", "@"]
        var plain = 0
        for _ in 0..<20_000 {
            let path = (0..<Int.random(in: 1...8, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            guard PathNormalizer.isPlain(path) else { continue }
            plain += 1
            #expect(PathNormalizer.decode(path) == .success(path), "\(path)")
        }
        #expect(plain > 100)
    }

}
