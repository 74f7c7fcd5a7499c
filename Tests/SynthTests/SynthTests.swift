import Foundation
import Synth
import TallyConfig
import TallyCore
import Testing
import UsageLog

@Suite("Synthetic logs")
struct SynthTests {
    static var demoConfig: Config {
        get throws {
            let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../fixtures/demo/tally.yaml").standardized.path
            return try Config.load(path: path)
        }
    }

    static let end = Timestamp.parse("2026-11-22T00:00:00Z")!

    func temporary() throws -> String {
        let path = NSTemporaryDirectory() + "tally-synth-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func events(in root: String) throws -> [UsageEvent] {
        var result: [UsageEvent] = []
        for segment in try LogDirectory.segments(root: root) {
            let summary = try SegmentReader.read(path: segment.path) { _, line in result.append(try UsageEvent(jsonLine: line)) }
            #expect(summary.damage == nil && summary.skippedTailBytes == 0)
        }
        return result
    }

    @Test func sameSeedSameBytesOtherSeedOtherBytes() async throws {
        let config = try Self.demoConfig
        func digest(seed: UInt64) async throws -> [String: Data] {
            let out = try temporary()
            defer { try? FileManager.default.removeItem(atPath: out) }
            _ = try await Synth.run(
                config: config, options: SynthOptions(events: 3000, days: 7, seed: seed, outDirectory: out, end: Self.end))
            var files: [String: Data] = [:]
            for segment in try LogDirectory.segments(root: out) {
                files[segment.collector + "/" + segment.stem] = try Data(contentsOf: URL(fileURLWithPath: segment.path))
            }
            return files
        }
        let a = try await digest(seed: 42)
        let b = try await digest(seed: 42)
        let c = try await digest(seed: 43)
        #expect(a == b)
        #expect(a != c)
    }

    @Test func writesExactlyTheRequestedEventsWithThePlantedPatterns() async throws {
        let config = try Self.demoConfig
        let out = try temporary()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let summary = try await Synth.run(
            config: config, options: SynthOptions(events: 20_000, days: 30, seed: 1, outDirectory: out, end: Self.end))
        let all = try events(in: out)
        #expect(all.count == 20_000 && summary.events == 20_000)
        #expect(Set(all.map(\.id)).count == all.count, "ids are unique")
        #expect(all.allSatisfy { $0.timestamp >= Self.end - 30 * 86_400_000 && $0.timestamp < Self.end })
        let keyIDs = Set(config.keys.map(\.id))
        #expect(all.allSatisfy { keyIDs.contains($0.key) })
        let priced = Set(config.pricing.models.map(\.model))
        #expect(all.allSatisfy { priced.contains($0.model) })
        #expect(Set(all.map(\.provider)) == ["openai", "anthropic", "gemini", "azure"])
        // Each provider's calls use its own API's endpoints, and Azure serves an OpenAI model under its deployment.
        #expect(all.filter { $0.provider == "gemini" }.allSatisfy { $0.endpoint == .generateContent && $0.model.hasPrefix("gemini") })
        #expect(all.filter { $0.provider == "azure" }.allSatisfy { $0.endpoint == .chatCompletions && $0.model == "gpt-4o" })

        // Skew: the busiest key carries far more than an even share.
        let perKey = Dictionary(grouping: all, by: \.key).mapValues(\.count)
        #expect(perKey.values.max()! > 3 * all.count / config.keys.count)
        // Exact duplicates from the same key.
        let repeats = Dictionary(grouping: all.filter { $0.promptHash != nil }, by: { "\($0.key)|\($0.promptHash!)" }).values.filter {
            $0.count > 1
        }
        #expect(repeats.count > 100)
        // Cached, cache-write and reasoning tokens, errors and streams all appear.
        #expect(all.contains { ($0.usage?.cachedInput ?? 0) > 0 })
        #expect(all.contains { ($0.usage?.cacheWrite ?? 0) > 0 })
        #expect(all.contains { ($0.usage?.reasoning ?? 0) > 0 })
        #expect(all.contains { $0.outcome == .upstreamError && $0.usage == nil })
        #expect(all.contains { $0.stream && $0.ttftMs != nil })

        // The retry loop: one key, one prompt, at least five times within two minutes, after errors.
        let loop = try #require(summary.retryLoop)
        let loopEvents = all.filter { $0.key == loop.key && $0.timestamp >= loop.start && $0.timestamp < loop.start + 120_000 }
        let byPrompt = Dictionary(grouping: loopEvents, by: { $0.promptHash ?? "" }).values.max { $0.count < $1.count }!
        #expect(byPrompt.count >= 5)
        #expect(byPrompt.filter { $0.outcome == .upstreamError }.count >= 3)

        // The runaway key spends more than the configured limit within an hour.
        let runaway = try #require(summary.runaway)
        let burst = all.filter { $0.key == runaway.key && $0.timestamp >= runaway.start && $0.timestamp < runaway.end }
        #expect(burst.count >= runaway.requests)
        let expired = config.keys.filter { ($0.expires ?? .max) < Self.end }.map(\.id)
        #expect(!expired.contains(runaway.key) && !expired.contains(loop.key))
        // Traffic on an expired key after its expiry is refused, as the collector would.
        for event in all where expired.contains(event.key) {
            let expires = config.keys.first { $0.id == event.key }!.expires!
            if event.timestamp >= expires { #expect(event.outcome == .rejectedRevoked && event.usage == nil) }
        }
    }

    @Test func refusesAConfigWithNothingToGenerate() async throws {
        var config = try Self.demoConfig
        config.pricing.models = []
        await #expect(throws: SynthError.self) {
            _ = try await Synth.run(
                config: config, options: SynthOptions(events: 10, days: 1, seed: 1, outDirectory: try temporary(), end: Self.end))
        }
    }
}
