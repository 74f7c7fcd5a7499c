import Foundation
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// Reads LiteLLM's `model_prices_and_context_window.json` (MIT licence): per-token prices keyed by model name.
public enum LiteLLMPrices {
    /// Why a LiteLLM price file cannot be used.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The priced entries of the file; entries without `input_cost_per_token` (images, audio, `sample_spec`) are skipped.
    /// Numbers are read from their literal text, so `7.5e-08` is exactly 75,000 pico-units.
    public static func load(path: String) throws(LoadError) -> [PriceEntry] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LoadError(message: "cannot read the LiteLLM price file \(path)")
        }
        let json: JSONValue
        do {
            json = try JSONValue.parse(Array(data))
        } catch {
            throw LoadError(message: "the LiteLLM price file \(path) is not JSON: \(error)")
        }
        guard case .object(let models) = json else { throw LoadError(message: "the LiteLLM price file \(path) is not a JSON object") }
        let name = (path as NSString).lastPathComponent
        var entries: [PriceEntry] = []
        for (model, fields) in models where model != "sample_spec" {
            func price(_ key: String) -> TokenPrice? {
                guard let literal = fields[key]?.numberLiteral else { return nil }
                return try? TokenPrice(perToken: literal)
            }
            guard let input = price("input_cost_per_token") else { continue }
            entries.append(
                PriceEntry(
                    ModelPrice(
                        model: model, input: input, output: price("output_cost_per_token") ?? TokenPrice(picosPerToken: 0),
                        cachedInput: price("cache_read_input_token_cost"), cacheWrite: price("cache_creation_input_token_cost"),
                        reasoning: price("output_cost_per_reasoning_token")), source: .litellm(file: name)))
        }
        return entries
    }
}
