import Foundation
import TallyConfig
import TallyCore
import UsageLog

/// Deterministic synthetic usage logs for a config's keys and priced models, written through the real segment writer.
///
/// The same config, options and seed give the same bytes. Events follow office hours and weekdays, keys are skewed
/// (a few heavy users), and the data carries what the auditor must find: exact duplicate prompts, near duplicates,
/// one retry loop after errors, one runaway key, cached and reasoning tokens, and upstream errors.
public enum Synth {
    public static func run(config: Config, options: SynthOptions) async throws -> SynthSummary {
        guard options.events >= 0 else { throw SynthError("--events must not be negative") }
        guard options.days >= 1 else { throw SynthError("--days must be at least 1") }
        guard options.collectors >= 1 else { throw SynthError("--collectors must be at least 1") }
        let world = try SynthWorld(config: config, seed: options.seed, end: options.end)
        let shards = options.collectors
        let names = (1...shards).map { shards == 1 ? config.collector.id : "\(config.collector.id)-\($0)" }
        let summaries = try await withThrowingTaskGroup(of: (Int, SynthSummary).self) { group in
            for shard in 0..<shards {
                let count = options.events / shards + (shard < options.events % shards ? 1 : 0)
                group.addTask {
                    var generator = ShardGenerator(world: world, options: options, shard: shard, collector: names[shard], count: count)
                    return (shard, try generator.run())
                }
            }
            var results: [(Int, SynthSummary)] = []
            for try await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
        var total = SynthSummary()
        total.collectors = names
        for s in summaries {
            total.events += s.events
            total.segments += s.segments
            total.bytes += s.bytes
            total.firstTimestamp = min(total.firstTimestamp, s.firstTimestamp)
            total.lastTimestamp = max(total.lastTimestamp, s.lastTimestamp)
            total.exactDuplicates += s.exactDuplicates
            total.nearDuplicates += s.nearDuplicates
            total.upstreamErrors += s.upstreamErrors
            total.retryLoop = total.retryLoop ?? s.retryLoop
            total.runaway = total.runaway ?? s.runaway
        }
        return total
    }
}

/// Generates one synthetic collector's events in time order.
struct ShardGenerator {
    struct Prompt {
        var hash: String
        var sim: UInt64
        var model: Int
        var chars: Int64
    }

    /// A planted event waiting for its time in the merged stream.
    struct Planted {
        var timestamp: Int64
        var key: Int
        var model: Int
        var prompt: Prompt
        var outcome: UsageEvent.Outcome
        var status: Int
        var usage: UsageEvent.Usage?
    }

    let world: SynthWorld
    let options: SynthOptions
    let shard: Int
    let collector: String
    let count: Int
    var rng: Xoshiro256
    var recent: [[Prompt]]
    var summary = SynthSummary()

    static let hourMs: Int64 = 3_600_000

    init(world: SynthWorld, options: SynthOptions, shard: Int, collector: String, count: Int) {
        self.world = world
        self.options = options
        self.shard = shard
        self.collector = collector
        self.count = count
        rng = Xoshiro256(seed: options.seed &+ UInt64(shard) &* 0x9E37_79B9_7F4A_7C15)
        recent = Array(repeating: [], count: world.keys.count)
    }

    mutating func run() throws -> SynthSummary {
        let writer = try SegmentWriter(logDirectory: options.outDirectory, collector: collector, options: options.writer)
        let spanMs = Int64(options.days) * 86_400_000
        let start = options.end - spanMs
        var planted = shard == 0 ? plant(start: start, spanMs: spanMs) : []
        planted.sort { $0.timestamp < $1.timestamp }
        let ordinary = count - planted.count

        // Hourly weights: office hours and weekdays carry most traffic.
        let hours = Int(spanMs / Self.hourMs)
        var cumulative = [Double](repeating: 0, count: hours + 1)
        for h in 0..<hours {
            let t = start + Int64(h) * Self.hourMs
            let dayNumber = Int((t / 86_400_000))
            let weekday = ((dayNumber % 7) + 7 + 3) % 7  // 0 = Monday (1970-01-01 was a Thursday)
            let hourOfDay = Int((t / Self.hourMs) % 24)
            let daytime = (8..<19).contains(hourOfDay) ? 1.0 : ((6..<8).contains(hourOfDay) || (19..<22).contains(hourOfDay) ? 0.45 : 0.12)
            cumulative[h + 1] = cumulative[h] + daytime * (weekday < 5 ? 1.0 : 0.3)
        }
        let totalWeight = cumulative[hours]

        var bucket = 0
        var nextPlanted = 0
        var line: [UInt8] = []
        line.reserveCapacity(1024)
        for j in 0..<max(0, ordinary) {
            let target = (Double(j) + rng.unit()) / Double(ordinary) * totalWeight
            while bucket < hours - 1 && cumulative[bucket + 1] <= target { bucket += 1 }
            let within = (target - cumulative[bucket]) / max(cumulative[bucket + 1] - cumulative[bucket], 1e-12)
            let timestamp = start + Int64(bucket) * Self.hourMs + Int64(within * Double(Self.hourMs))
            while nextPlanted < planted.count, planted[nextPlanted].timestamp <= timestamp {
                try write(plantedEvent(planted[nextPlanted]), to: writer)
                nextPlanted += 1
            }
            try write(ordinaryEvent(timestamp: timestamp), to: writer)
        }
        while nextPlanted < planted.count {
            try write(plantedEvent(planted[nextPlanted]), to: writer)
            nextPlanted += 1
        }
        try writer.close()
        summary.segments = writer.segmentsClosed
        return summary
    }

    private mutating func write(_ event: UsageEvent, to writer: SegmentWriter) throws {
        try writer.append(event, now: event.timestamp)
        summary.events += 1
        summary.firstTimestamp = min(summary.firstTimestamp, event.timestamp)
        summary.lastTimestamp = max(summary.lastTimestamp, event.timestamp)
        if event.outcome == .upstreamError { summary.upstreamErrors += 1 }
    }

    /// The retry loop and the runaway burst, placed in the middle and late in the span.
    private mutating func plant(start: Int64, spanMs: Int64) -> [Planted] {
        var result: [Planted] = []
        let budget = count / 2
        // Retry loop: eight identical prompts from one key within ~90 s, the first six failing.
        let repeats = 8
        if budget >= repeats {
            let key = world.retryKey
            let model = world.keys[key].primaryModel
            let prompt = newPrompt(model: model, chars: 1800)
            let loopStart = start + spanMs / 2 + 10 * Self.hourMs
            for k in 0..<repeats {
                let failing = k < 6
                let status = failing ? (k % 2 == 0 ? 500 : 429) : 200
                let usage = failing ? nil : UsageEvent.Usage(input: 450, output: 120)
                result.append(
                    Planted(
                        timestamp: loopStart + Int64(k) * 11_000, key: key, model: model, prompt: prompt,
                        outcome: failing ? .upstreamError : .ok, status: status, usage: usage))
            }
            summary.retryLoop = (world.keys[key].id, loopStart, repeats)
        }
        // Runaway: a rarely used key fires large calls at the most expensive model for half an hour.
        let burst = min(20_000, max(200, count / 500), budget - result.count)
        if burst > 0 {
            let key = world.runawayKey
            let model = world.runawayModel
            let burstStart = start + spanMs * 4 / 5 + 14 * Self.hourMs
            let burstMs: Int64 = 30 * 60_000
            for k in 0..<burst {
                let prompt = newPrompt(model: model, chars: 600_000)
                let usage = UsageEvent.Usage(input: 150_000, output: 8000, cachedInput: 0)
                result.append(
                    Planted(
                        timestamp: burstStart + Int64(k) * burstMs / Int64(burst), key: key, model: model,
                        prompt: prompt, outcome: .ok, status: 200, usage: usage))
            }
            summary.runaway = (world.keys[key].id, burstStart, burstStart + burstMs, burst)
        }
        return result
    }

    private mutating func newPrompt(model: Int, chars: Int64) -> Prompt {
        let hash = Hex.encode(words: rng.next(), rng.next(), rng.next(), rng.next())
        return Prompt(hash: hash, sim: rng.next(), model: model, chars: chars)
    }

    private mutating func plantedEvent(_ p: Planted) -> UsageEvent {
        let m = world.models[p.model]
        return UsageEvent(
            id: EventID.make(milliseconds: p.timestamp, using: &rng), timestamp: p.timestamp, collector: collector,
            key: world.keys[p.key].id, provider: m.provider, endpoint: m.endpoint, model: m.name, status: p.status,
            outcome: p.outcome, stream: false, usage: p.usage, latencyMs: p.outcome == .ok ? 2400 + Int64(rng.below(900)) : 300,
            promptHash: p.prompt.hash, promptSim: p.prompt.sim, promptChars: p.prompt.chars,
            error: p.outcome == .upstreamError ? "upstream returned \(p.status)" : nil)
    }

    private mutating func ordinaryEvent(timestamp: Int64) -> UsageEvent {
        let keyIndex = world.pickKey(rng.unit())
        let key = world.keys[keyIndex]
        let roll = rng.unit()
        var modelIndex = roll < 0.75 ? key.primaryModel : (roll < 0.95 ? key.secondaryModel : rng.below(world.models.count))

        // The prompt: new, an exact repeat of a recent one from this key, or a near repeat.
        var prompt: Prompt
        let promptRoll = rng.unit()
        if promptRoll < 0.08, !recent[keyIndex].isEmpty {
            prompt = recent[keyIndex][rng.below(recent[keyIndex].count)]
            modelIndex = prompt.model
            summary.exactDuplicates += 1
        } else if promptRoll < 0.11, !recent[keyIndex].isEmpty {
            prompt = newPrompt(model: modelIndex, chars: 0)
            let base = recent[keyIndex][rng.below(recent[keyIndex].count)]
            var sim = base.sim
            for _ in 0...rng.below(3) { sim ^= 1 << UInt64(rng.below(64)) }
            prompt.sim = sim
            prompt.chars = base.chars + Int64(rng.below(40))
            modelIndex = base.model
            prompt.model = modelIndex
            summary.nearDuplicates += 1
        } else {
            prompt = newPrompt(model: modelIndex, chars: 0)
        }
        let model = world.models[modelIndex]

        // Tokens: log-uniform sizes; embeddings have no output.
        let input = model.embedding ? Int64(20 + rng.below(2000)) : Int64(Foundation.exp(4.0 + rng.unit() * 5.5))
        if prompt.chars == 0 { prompt.chars = input * 4 + Int64(rng.below(4)) }
        if recent[keyIndex].count < 16 { recent[keyIndex].append(prompt) } else { recent[keyIndex][rng.below(16)] = prompt }
        var output = model.embedding ? 0 : Int64(Foundation.exp(3.0 + rng.unit() * 4.0))
        var cached: Int64 = 0
        var write: Int64 = 0
        var reasoning: Int64 = 0
        if !model.embedding, rng.chance(0.25) { cached = Int64(Double(input) * (0.3 + rng.unit() * 0.6)) }
        if model.kind == .anthropic, rng.chance(0.10) { write = (input - cached) * Int64(1 + rng.below(3)) / 4 }
        if model.reasoning {
            reasoning = Int64(Double(output) * (0.5 + rng.unit() * 1.5))
            output += reasoning
        }

        let stream = !model.embedding && rng.chance(0.4)
        var outcome = UsageEvent.Outcome.ok
        var status = 200
        var usage: UsageEvent.Usage? = UsageEvent.Usage(
            input: input, output: output, cachedInput: cached, cacheWrite: write, reasoning: reasoning)
        var error: String?
        let failure = rng.unit()
        if let expires = key.expires, timestamp >= expires {
            // The application keeps calling with an expired key; the collector refuses it.
            outcome = .rejectedRevoked
            status = 403
            usage = nil
            error = "key \(key.id) expired"
        } else if failure < 0.012 {
            outcome = .upstreamError
            let statuses = model.kind == .anthropic ? [500, 529, 429, 400] : [500, 502, 503, 429, 400]
            status = statuses[rng.below(statuses.count)]
            usage = nil
            error = "upstream returned \(status)"
        } else if failure < 0.015, stream {
            outcome = .clientAbort
            let seen = Int64(rng.below(Int(max(1, output))))
            usage = UsageEvent.Usage(input: input, output: seen, cachedInput: cached, cacheWrite: write, reasoning: min(reasoning, seen))
            error = "client disconnected"
        }
        // What providers bill beyond the tokens: the tier they served on, one-hour cache writes, web searches, long
        // context. Taken from a hash of what was drawn, not from new draws, so the rest of the month is as before.
        var serviceTier: String?
        var mix = (UInt64(bitPattern: timestamp) ^ UInt64(bitPattern: input) &* 0x9E37_79B9_7F4A_7C15) &* 0xBF58_476D_1CE4_E5B9
        mix ^= mix >> 31
        let h = Int(mix % 1000)
        if usage != nil {
            switch model.kind {
            case .openai, .azure:
                if !model.embedding { serviceTier = h < 30 ? "priority" : h < 50 ? "flex" : "default" }
            case .anthropic:
                serviceTier = h < 20 ? "priority" : "standard"
                if write > 0, h % 2 == 0 { usage!.cacheWrite1h = write / 2 }
                if h >= 990 { usage!.webSearchRequests = Int64(1 + h % 3) }
            case .gemini:
                if model.name.contains("pro"), h < 15 { usage!.input += 200_000 }
            }
        }
        let ttft: Int64? = stream ? 150 + Int64(rng.below(750)) : nil
        let latency = (ttft ?? 120) + output * Int64(4 + rng.below(12)) + Int64(rng.below(300))

        var tags: [String: String] = [:]
        if rng.chance(0.5) {
            tags["env"] = rng.chance(0.8) ? "prod" : "staging"
            tags["feature"] = ["search", "chat", "summarise", "classify", "extract"][rng.below(5)]
        }
        let endUser: String? = rng.chance(0.35) ? "eu-\(rng.below(500))" : nil

        return UsageEvent(
            id: EventID.make(milliseconds: timestamp, using: &rng), timestamp: timestamp, collector: collector,
            key: key.id, provider: model.provider, endpoint: model.endpoint, model: model.name, status: status,
            outcome: outcome, stream: stream, usage: usage, latencyMs: latency, ttftMs: ttft, promptHash: prompt.hash,
            promptSim: prompt.sim, promptChars: prompt.chars, user: endUser, tags: tags, error: error, serviceTier: serviceTier)
    }
}
