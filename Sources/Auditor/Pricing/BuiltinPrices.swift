import TallyConfig
import TallyCore
import TallyLedger

/// List prices of popular OpenAI, Anthropic and Google models, per token, as published in LiteLLM 1.109.1's
/// bundled price file (taken 2026-11). Facts with a date: a config or a LiteLLM file overrides them.
public enum BuiltinPrices {
    public static let taken = "2026-11"

    /// (model, input, output, cache read, cache write), per token, in USD.
    static let table: [(String, String, String, String?, String?)] = [
        ("gpt-4o", "2.5e-06", "1e-05", "1.25e-06", nil),
        ("gpt-4o-mini", "1.5e-07", "6e-07", "7.5e-08", nil),
        ("gpt-4.1", "2e-06", "8e-06", "5e-07", nil),
        ("o3", "2e-06", "8e-06", "5e-07", nil),
        ("o4-mini", "1.1e-06", "4.4e-06", "2.75e-07", nil),
        ("claude-sonnet-4-5", "3e-06", "1.5e-05", "3e-07", "3.75e-06"),
        ("claude-haiku-4-5", "1e-06", "5e-06", "1e-07", "1.25e-06"),
        ("claude-3-5-haiku-20241022", "8e-07", "4e-06", "8e-08", "1e-06"),
        ("gemini-2.5-pro", "1.25e-06", "1e-05", "1.25e-07", nil),
        ("gemini-2.5-flash", "3e-07", "2.5e-06", "3e-08", nil),
        ("text-embedding-3-small", "2e-08", "0", nil, nil),
        ("text-embedding-3-large", "1.3e-07", "0", nil, nil),
    ]

    /// The table as price entries. Its prices are in USD: a config in another currency gets no built-in prices.
    public static func entries(currency: String) -> [PriceEntry] {
        guard currency == "USD" else { return [] }
        return table.map { row in
            // The table is fixed text checked by tests; a typo would fail them, not production.
            func price(_ text: String) -> TokenPrice { try! TokenPrice(perToken: text) }
            return PriceEntry(
                ModelPrice(
                    model: row.0, input: price(row.1), output: price(row.2), cachedInput: row.3.map(price),
                    cacheWrite: row.4.map(price)), source: .builtin(taken: taken))
        }
    }
}
