import Foundation
import TallyConfig
import TallyCore
import UsageLog

/// Why synth cannot run on a config.
public struct SynthError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The keys and models synth draws from, fixed from the config before generation starts.
struct SynthWorld: Sendable {
    struct KeyProfile: Sendable {
        var id: String
        /// Upper bound of this key's share in the cumulative Zipf distribution.
        var cumulativeWeight: Double
        var primaryModel: Int
        var secondaryModel: Int
        var priority: Bool
        /// After this moment the collector refuses the key.
        var expires: Int64?
    }

    struct ModelProfile: Sendable {
        var name: String
        var provider: String
        var kind: ProviderKind
        var endpoint: UsageEvent.Endpoint
        var reasoning: Bool
        var embedding: Bool
        /// Rough cost of a large call, for picking the most expensive model for the runaway burst.
        var weight: Int128
    }

    var keys: [KeyProfile]
    var models: [ModelProfile]
    /// Index of the key that loops on a failing prompt, and of the key that runs away.
    var retryKey: Int
    var runawayKey: Int
    var runawayModel: Int

    init(config: Config, seed: UInt64, end: Int64) throws(SynthError) {
        guard !config.keys.isEmpty else { throw SynthError("the config has no keys to generate traffic for (add entries under keys:)") }
        guard !config.providers.isEmpty else { throw SynthError("the config has no providers (add entries under providers:)") }
        var seen: Set<String> = []
        let priced = config.pricing.models.filter { seen.insert($0.model).inserted }
        guard !priced.isEmpty else { throw SynthError("the config prices no models (add entries under pricing.models:)") }

        let openai =
            config.defaultProvider.flatMap(config.provider(named:)).flatMap { $0.kind == .openai ? $0 : nil }
            ?? config.providers.first { $0.kind == .openai }
        let anthropic = config.providers.first { $0.kind == .anthropic }
        let gemini = config.providers.first { $0.kind == .gemini }
        var models = priced.map { price in
            let name = price.model
            let provider = (name.hasPrefix("claude") ? anthropic : name.hasPrefix("gemini") ? gemini : openai) ?? config.providers[0]
            let embedding = name.contains("embedding")
            let endpoint: UsageEvent.Endpoint =
                switch provider.kind {
                case .anthropic: .messages
                case .gemini: embedding ? .embeddings : .generateContent
                case .openai, .azure: embedding ? .embeddings : .chatCompletions
                }
            let reasoning =
                ["o1", "o3", "o4", "gpt-5"].contains { name.hasPrefix($0) } || name.contains("thinking")
                || (provider.kind == .gemini && name.contains("2.5"))
            let weight = price.input.picosPerToken * 150_000 + price.output.picosPerToken * 8000
            return ModelProfile(
                name: name, provider: provider.name, kind: provider.kind, endpoint: endpoint,
                reasoning: reasoning, embedding: embedding, weight: weight)
        }
        // An Azure OpenAI deployment serves the first OpenAI chat model too, as organisations that use both do.
        if let azure = config.providers.first(where: { $0.kind == .azure }),
            let served = models.first(where: { $0.kind == .openai && !$0.embedding })
        {
            var profile = served
            profile.provider = azure.name
            profile.kind = azure.kind
            models.append(profile)
        }

        var rng = Xoshiro256(seed: seed ^ 0x5EED_0F_4A11)
        // Zipf-like skew over a seeded order of the keys: a few heavy users, a long tail.
        var order = Array(config.keys.indices)
        order.shuffle(using: &rng)
        let raw = order.indices.map { rank in 1.0 / pow(Double(rank + 1), 1.2) }
        let total = raw.reduce(0, +)
        var running = 0.0
        let chatModels = models.indices.filter { !models[$0].embedding }
        let pool = chatModels.isEmpty ? Array(models.indices) : chatModels
        var keys: [KeyProfile] = []
        for (rank, index) in order.enumerated() {
            running += raw[rank] / total
            let key = config.keys[index]
            let primary = pool[rng.below(pool.count)]
            let secondary = models.indices.count > 1 ? models.indices.randomElement(using: &rng)! : primary
            keys.append(
                KeyProfile(
                    id: key.id, cumulativeWeight: running, primaryModel: primary, secondaryModel: secondary,
                    priority: key.priority, expires: key.expires))
        }
        keys[keys.count - 1].cumulativeWeight = 1.0
        // Planted patterns need keys that still work at the end of the span and are not the emergency bypass.
        let ordinary = keys.indices.filter { !keys[$0].priority && (keys[$0].expires ?? .max) > end }
        self.models = models
        self.keys = keys
        retryKey = ordinary.count > 1 ? ordinary[1] : ordinary.first ?? 0
        // A rarely used key that suddenly runs away.
        runawayKey = ordinary.last ?? keys.count - 1
        runawayModel = models.indices.max { models[$0].weight < models[$1].weight }!
    }

    func pickKey(_ u: Double) -> Int {
        var low = 0
        var high = keys.count - 1
        while low < high {
            let mid = (low + high) / 2
            if keys[mid].cumulativeWeight < u { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
