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

    /// The per-token fields read, and what each is in a `ModelPrice`.
    static let tokenFields = [
        "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost", "cache_creation_input_token_cost",
        "output_cost_per_reasoning_token",
    ]

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
            var prices: [String: TokenPrice] = [:]
            var problem: String?
            for field in tokenFields {
                guard let value = fields[field], !value.isNull else { continue }
                guard let literal = value.numberLiteral, let price = try? TokenPrice(perToken: literal) else {
                    problem = "\(field) = \(value.numberLiteral ?? "not a number")"
                    break
                }
                prices[field] = price
            }
            guard problem == nil, let input = prices["input_cost_per_token"] else {
                parsed.skipped.append(
                    "\(model): \(problem ?? "no input price") is not a price Tally can hold exactly (10⁻¹² a token at the finest); "
                        + "its calls stay unpriced")
                continue
            }
            parsed.entries.append(
                PriceEntry(
                    ModelPrice(
                        model: model, input: input, output: prices["output_cost_per_token"] ?? TokenPrice(picosPerToken: 0),
                        cachedInput: prices["cache_read_input_token_cost"], cacheWrite: prices["cache_creation_input_token_cost"],
                        reasoning: prices["output_cost_per_reasoning_token"]), source: source))
        }
        parsed.skipped.sort()
        return parsed
    }
}
