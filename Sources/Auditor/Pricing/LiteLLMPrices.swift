import Foundation
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// Reads LiteLLM's `model_prices_and_context_window.json` (MIT licence): per-token prices keyed by model name. The
/// same reader serves a config's `pricing.litellm_file` and the built-in snapshot (`LiteLLMSnapshot`).
public enum LiteLLMPrices {
    /// Why a LiteLLM price file cannot be used.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// What a file gave: its priced entries, and the models skipped because a price could not be held exactly.
    public struct Parsed: Sendable {
        public var entries: [PriceEntry] = []
        /// One line per skipped model, naming it and the field: its calls stay unpriced (listed, never free).
        public var skipped: [String] = []
    }

    /// The per-token fields read, longest first (so that `…_cost_above_1hr` is not read as `…_cost` plus a suffix), and
    /// the rate each sets. Any of them may carry a long-context suffix (`_above_200k_tokens`) and then a tier suffix
    /// (`_priority`, `_flex`, `_batches`, …), in that order, as LiteLLM writes them.
    static let rateFields: [(name: String, rate: Rate)] = [
        ("cache_creation_input_token_cost_above_1hr", .cacheWrite1h),
        ("cache_creation_input_token_cost", .cacheWrite),
        ("cache_read_input_token_cost", .cachedInput),
        ("output_cost_per_reasoning_token", .reasoning),
        ("input_cost_per_token", .input),
        ("output_cost_per_token", .output),
    ]

    /// The rate a price field sets.
    enum Rate: Sendable {
        case input, output, cachedInput, cacheWrite, cacheWrite1h, reasoning

        /// Where the rate goes in a `TokenRates`; nil for the reasoning rate, which has no tier or threshold.
        var keyPath: WritableKeyPath<TokenRates, TokenPrice?>? {
            switch self {
            case .input: \.input
            case .output: \.output
            case .cachedInput: \.cachedInput
            case .cacheWrite: \.cacheWrite
            case .cacheWrite1h: \.cacheWrite1h
            case .reasoning: nil
            }
        }
    }

    /// A price field's parts: its rate (nil for the reasoning rate), its long-context threshold, its tier.
    struct FieldName: Equatable {
        var rate: WritableKeyPath<TokenRates, TokenPrice?>?
        var above: Int64?
        var tier: String?

        init(rate: WritableKeyPath<TokenRates, TokenPrice?>?, above: Int64?, tier: String?) {
            self.rate = rate
            self.above = above
            self.tier = tier
        }

        /// The parts of `name`, or nil when it is not a per-token price field Tally reads (image, audio, per-second
        /// prices; a cache lifetime other than one hour).
        init?(_ name: String) {
            guard let field = LiteLLMPrices.rateFields.first(where: { name.hasPrefix($0.name) }) else { return nil }
            var rest = Substring(name.dropFirst(field.name.count))
            rate = field.rate.keyPath
            if rest.hasPrefix("_above_") {
                // _above_200k_tokens or _above_200000_tokens
                let body = rest.dropFirst("_above_".count)
                guard let end = body.range(of: "_tokens") else { return nil }
                var number = body[..<end.lowerBound]
                var scale: Int64 = 1
                if number.hasSuffix("k") {
                    number = number.dropLast()
                    scale = 1000
                }
                guard !number.isEmpty, number.allSatisfy(\.isASCII), number.allSatisfy(\.isNumber), let n = Int64(number) else {
                    return nil
                }
                above = n * scale
                rest = body[end.upperBound...]
            }
            if rest.isEmpty { return }
            guard rest.hasPrefix("_"), rest.count > 1, rest.dropFirst().allSatisfy({ $0.isASCII && ($0.isLetter || $0 == "_") }) else {
                return nil
            }
            guard let key = ServiceTier.priceKey(String(rest.dropFirst())) else { return nil }
            tier = key
        }
    }

    /// The file at `path`.
    public static func load(path: String) throws(LoadError) -> Parsed {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LoadError(message: "cannot read the LiteLLM price file \(path)")
        }
        let name = (path as NSString).lastPathComponent
        return try parse(Array(data), source: .litellm(file: name), what: "the LiteLLM price file \(path)")
    }

    /// The priced entries of a price file's text. Entries without `input_cost_per_token` (images, audio,
    /// `sample_spec`) are not token prices and are left out; an entry with a token price finer than 10⁻¹² a token (or
    /// not a price at all) is skipped whole and listed in `skipped`, never read as zero and never a reason to refuse
    /// the file. Numbers are read from their literal text, so `7.5e-08` is exactly 75,000 pico-units.
    public static func parse(_ bytes: [UInt8], source: PriceSource, what: String) throws(LoadError) -> Parsed {
        let json: JSONValue
        do {
            json = try JSONValue.parse(bytes)
        } catch {
            throw LoadError(message: "\(what) is not JSON: \(error)")
        }
        guard case .object(let models) = json else { throw LoadError(message: "\(what) is not a JSON object") }
        var parsed = Parsed()
        for (model, fields) in models where model != "sample_spec" {
            guard fields["input_cost_per_token"] != nil else { continue }
            do throws(EntryProblem) {
                parsed.entries.append(
                    PriceEntry(
                        try price(model: model, fields), source: source, litellmProvider: fields["litellm_provider"]?.stringValue,
                        mode: fields["mode"]?.stringValue))
            } catch {
                parsed.skipped.append(
                    "\(model): \(error.field) = \(error.value) is not a price Tally can hold exactly (10⁻¹² a token at the finest); "
                        + "its calls stay unpriced")
            }
        }
        parsed.skipped.sort()
        return parsed
    }

    /// A field of an entry that is not a price Tally can hold.
    struct EntryProblem: Error {
        var field: String
        var value: String
    }

    /// One entry's prices: its plain rates, per-tier and long-context rates, one-hour cache writes and web searches.
    static func price(model: String, _ fields: JSONValue) throws(EntryProblem) -> ModelPrice {
        guard case .object(let members) = fields else { throw EntryProblem(field: "the entry", value: "not an object") }
        var standard = TokenRates()
        var reasoning: TokenPrice?
        var tiers: [String: TokenRates] = [:]
        var bands: [Int64: LongContextRates] = [:]
        for (name, value) in members {
            guard let field = FieldName(name), !value.isNull else { continue }
            guard let literal = value.numberLiteral, let rate = try? TokenPrice(perToken: literal) else {
                throw EntryProblem(field: name, value: value.numberLiteral ?? "not a number")
            }
            guard let kind = field.rate else {
                // The reasoning rate is read without tier or threshold, as LiteLLM reads it.
                if field.above == nil, field.tier == nil { reasoning = rate }
                continue
            }
            switch (field.above, field.tier) {
            case (nil, nil): standard[keyPath: kind] = rate
            case (nil, let tier?): tiers[tier, default: TokenRates()][keyPath: kind] = rate
            case (let above?, nil): bands[above, default: LongContextRates(above: above, rates: TokenRates())].rates[keyPath: kind] = rate
            case (let above?, let tier?):
                bands[above, default: LongContextRates(above: above, rates: TokenRates())].tiers[tier, default: TokenRates()][
                    keyPath: kind] =
                    rate
            }
        }
        guard let input = standard.input else { throw EntryProblem(field: "input_cost_per_token", value: "not a number") }
        var webSearch: Money?
        if case .object = fields["search_context_cost_per_query"] {
            // Tally cannot see the search context size a call asked for; medium is the providers' default.
            let sizes = ["search_context_size_medium", "search_context_size_low", "search_context_size_high"]
            if let size = sizes.first(where: { fields["search_context_cost_per_query"]?[$0]?.numberLiteral != nil }),
                let literal = fields["search_context_cost_per_query"]?[size]?.numberLiteral
            {
                guard let amount = try? Money(parsingScientific: literal), amount >= .zero else {
                    throw EntryProblem(field: "search_context_cost_per_query.\(size)", value: literal)
                }
                webSearch = amount
            }
        }
        return ModelPrice(
            model: model, input: input, output: standard.output ?? TokenPrice(picosPerToken: 0), cachedInput: standard.cachedInput,
            cacheWrite: standard.cacheWrite, reasoning: reasoning, cacheWrite1h: standard.cacheWrite1h, webSearchRequest: webSearch,
            tiers: tiers, longContext: bands.values.filter { $0.rates.input != nil }.sorted { $0.above < $1.above })
    }
}
