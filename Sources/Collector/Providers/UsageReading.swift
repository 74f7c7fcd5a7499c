import TallyConfig
import UsageLog

/// Turns a provider's usage object into the log's normalised counts (`docs/usage-log.md`).
enum UsageReading {
    /// OpenAI chat/completions/embeddings (`prompt_tokens`…) and Responses (`input_tokens`…) usage.
    static func openAI(_ usage: JSONValue) -> UsageEvent.Usage? {
        guard case .object = usage else { return nil }
        func int(_ value: JSONValue?) -> Int64 { max(0, value?.int64Value ?? 0) }
        guard let input = (usage["prompt_tokens"] ?? usage["input_tokens"])?.int64Value else { return nil }
        let output = int(usage["completion_tokens"] ?? usage["output_tokens"])
        let inputDetails = usage["prompt_tokens_details"] ?? usage["input_tokens_details"]
        let outputDetails = usage["completion_tokens_details"] ?? usage["output_tokens_details"]
        let cached = min(int(inputDetails?["cached_tokens"]), input)
        let reasoning = min(int(outputDetails?["reasoning_tokens"]), output)
        return UsageEvent.Usage(input: max(0, input), output: output, cachedInput: cached, cacheWrite: 0, reasoning: reasoning)
    }

    /// Anthropic usage: `input_tokens` excludes cache reads and writes, which the log counts inside `input`.
    static func anthropic(_ usage: JSONValue) -> UsageEvent.Usage? {
        guard case .object = usage else { return nil }
        return anthropic(counts: integerMembers(usage))
    }

    /// Anthropic usage from its integer members (`input_tokens`, `cache_creation_input_tokens`, …).
    static func anthropic(counts: [String: Int64]) -> UsageEvent.Usage {
        func int(_ key: String) -> Int64 { max(0, counts[key] ?? 0) }
        let base = int("input_tokens")
        let write = int("cache_creation_input_tokens")
        let read = int("cache_read_input_tokens")
        return UsageEvent.Usage(input: base + write + read, output: int("output_tokens"), cachedInput: read, cacheWrite: write, reasoning: 0)
    }

    /// The members of an object that are integers (the last of a repeated name wins).
    static func integerMembers(_ object: JSONValue) -> [String: Int64] {
        guard case .object(let members) = object else { return [:] }
        var counts: [String: Int64] = [:]
        for member in members {
            if let n = member.value.int64Value { counts[member.key] = n }
        }
        return counts
    }

    static func read(_ usage: JSONValue, kind: ProviderKind) -> UsageEvent.Usage? {
        kind == .anthropic ? anthropic(usage) : openAI(usage)
    }
}
