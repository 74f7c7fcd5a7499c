import Foundation
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

@Suite("Exact pricing")
struct PricingTests {
    func money(_ text: String) throws -> Money { try Money(parsing: text) }
    func perMillion(_ text: String) throws -> TokenPrice { try TokenPrice(perMillion: text) }

    /// gpt-4o-mini at 0.15 / 0.60 / cached 0.075 per million:
    /// 600,000 plain input × 0.15e-6 = 0.09; 400,000 cached × 0.075e-6 = 0.03; 200,000 output (50,000 of them
    /// reasoning, no reasoning price) × 0.60e-6 = 0.12; total 0.24 exactly.
    @Test func cachedAndReasoningTokens() throws {
        let entry = PriceEntry(
            ModelPrice(
                model: "gpt-4o-mini", input: try perMillion("0.15"), output: try perMillion("0.60"),
                cachedInput: try perMillion("0.075")), source: .config)
        let cost = entry.cost(TokenCounts(input: 1_000_000, output: 200_000, cachedInput: 400_000, cacheWrite: 0, reasoning: 50_000))
        #expect(cost == (try money("0.24")))
        #expect(cost.formatted(places: 6) == "0.240000")
    }

    /// claude-sonnet-4-5: 2,000 plain input × 3e-6 = 0.006; 5,000 cache reads × 0.3e-6 = 0.0015;
    /// 3,000 cache writes × 3.75e-6 = 0.01125; 1,000 output × 15e-6 = 0.015; total 0.03375.
    @Test func cacheWritesAtTheirOwnPrice() throws {
        let entry = PriceEntry(
            ModelPrice(
                model: "claude-sonnet-4-5", input: try perMillion("3.00"), output: try perMillion("15.00"),
                cachedInput: try perMillion("0.30"), cacheWrite: try perMillion("3.75")), source: .config)
        #expect(
            entry.cost(TokenCounts(input: 10_000, output: 1_000, cachedInput: 5_000, cacheWrite: 3_000, reasoning: 0))
                == (try money("0.03375")))
    }

    /// Reasoning tokens at their own price when one is set: 600 × 8e-6 + 400 × 20e-6 = 0.0048 + 0.008 = 0.0128;
    /// plus 100 input × 2e-6 = 0.0002.
    @Test func reasoningPriceWhenSet() throws {
        let entry = PriceEntry(
            ModelPrice(model: "o3", input: try perMillion("2"), output: try perMillion("8"), reasoning: try perMillion("20")),
            source: .config)
        #expect(entry.cost(TokenCounts(input: 100, output: 1_000, cachedInput: 0, cacheWrite: 0, reasoning: 400)) == (try money("0.013")))
    }

    /// Missing cached and cache-write prices fall back to the input price: 300 × 1e-6 in all.
    @Test func missingCachePricesFallBackToInput() throws {
        let entry = PriceEntry(ModelPrice(model: "m", input: try perMillion("1"), output: try perMillion("0")), source: .config)
        #expect(entry.cost(TokenCounts(input: 300, output: 0, cachedInput: 100, cacheWrite: 100, reasoning: 0)) == (try money("0.0003")))
    }

    /// A price change on 2026-11-15: calls before it use the old entry, calls from it the new one, and each says which.
    @Test func datedPriceChanges() throws {
        let changeDay = Timestamp.parse("2026-11-15T00:00:00Z")!
        let book = PriceBook(entries: [
            PriceEntry(ModelPrice(model: "m", input: try perMillion("1.00"), output: try perMillion("2.00")), source: .config),
            PriceEntry(
                ModelPrice(model: "m", input: try perMillion("1.50"), output: try perMillion("2.00"), from: changeDay), source: .config),
        ])
        let before = try #require(book.price(model: "m", provider: "openai", at: changeDay - 1))
        let after = try #require(book.price(model: "m", provider: "openai", at: changeDay))
        #expect(before.input == (try perMillion("1.00")) && before.from == nil)
        #expect(after.input == (try perMillion("1.50")) && after.from == changeDay)
        // 1,000,000 input tokens: 1.00 before the change, 1.50 after.
        #expect(before.cost(TokenCounts(input: 1_000_000, output: 0, cachedInput: 0, cacheWrite: 0, reasoning: 0)) == (try money("1")))
        #expect(after.cost(TokenCounts(input: 1_000_000, output: 0, cachedInput: 0, cacheWrite: 0, reasoning: 0)) == (try money("1.5")))
    }

    @Test func configBeatsLiteLLMBeatsBuiltinAndNamesMatchInOrder() throws {
        let folder = NSTemporaryDirectory() + "tally-prices-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/model_prices_and_context_window.json"
        try """
        {"sample_spec": {"input_cost_per_token": 0, "mode": "chat"},
         "gpt-4o": {"input_cost_per_token": 2.4e-06, "output_cost_per_token": 9.6e-06, "litellm_provider": "openai"},
         "gemini/gemini-2.5-flash": {"input_cost_per_token": 3e-07, "output_cost_per_token": 2.5e-06, "cache_read_input_token_cost": 3e-08},
         "o3": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06, "output_cost_per_reasoning_token": 1.6e-05},
         "dall-e-3": {"output_cost_per_image": 0.04}}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        var config = try Config.parse(
            yaml: """
                pricing:
                  litellm_file: \(file)
                  models:
                    - {model: gpt-4o-mini, input: 0.10, output: 0.50}
                """)
        config.baseDirectory = "/"
        let book = try PriceBook(config: config)
        let now = Timestamp.parse("2026-11-22T12:00:00Z")!

        #expect(book.price(model: "gpt-4o-mini", provider: "openai", at: now)?.source == .config)
        #expect(book.price(model: "gpt-4o", provider: "openai", at: now)?.input == TokenPrice(picosPerToken: 2_400_000))
        #expect(book.price(model: "gpt-4o", provider: "openai", at: now)?.source == .litellm(file: "model_prices_and_context_window.json"))
        #expect(book.price(model: "gpt-4o-2099-01-01", provider: "openai", at: now)?.model == "gpt-4o", "dated suffix stripped")
        #expect(book.price(model: "gemini-2.5-flash", provider: "gemini", at: now)?.model == "gemini/gemini-2.5-flash", "provider prefix")
        #expect(book.price(model: "o3", provider: "openai", at: now)?.reasoning == TokenPrice(picosPerToken: 16_000_000))
        #expect(book.price(model: "claude-haiku-4-5", provider: "anthropic", at: now)?.source == .builtin(taken: BuiltinPrices.taken))
        #expect(
            book.price(model: "claude-haiku-4-5-20251001", provider: "anthropic", at: now)?.cacheWrite
                == TokenPrice(picosPerToken: 1_250_000))
        #expect(book.price(model: "dall-e-3", provider: "openai", at: now) == nil, "entries without token prices are not prices")
        #expect(book.price(model: "my-own-model", provider: "openai", at: now) == nil, "unpriced, never zero")
    }

    @Test func builtinPricesAreLiteLLMsFileAndUSDOnly() throws {
        let entries = BuiltinPrices.entries
        #expect(entries.count > 500 && BuiltinPrices.skipped.isEmpty)
        #expect(entries.allSatisfy { $0.source == .builtin(taken: "litellm \(LiteLLMSnapshot.release)") })
        let mini = try #require(entries.first { $0.model == "gpt-4o-mini" })
        #expect(mini.cachedInput == TokenPrice(picosPerToken: 75_000))
        #expect(mini.cost(TokenCounts(input: 1, output: 0, cachedInput: 1, cacheWrite: 0, reasoning: 0)) == Money(picos: 75_000))
    }

    /// LiteLLM and built-in prices are USD: in EUR they are used only through `pricing.usd_rate`, at the rate in force
    /// at the call, and without it they are left out with a warning, never taken as euros.
    @Test func usdPricesInAnotherCurrencyNeedARate() throws {
        let base = """
            currency: EUR
            providers:
              - {name: openai, kind: openai, base_url: "https://example.com", api_key_env: KEY}
            """
        let november10 = Timestamp.parse("2026-11-10T12:00:00Z")!
        let withoutRate = try PriceBook(config: try Config.parse(yaml: base))
        #expect(withoutRate.price(model: "gpt-4o-mini", provider: "openai", at: november10) == nil, "USD list prices are not EUR prices")
        #expect(withoutRate.warnings.contains { $0.contains("pricing.usd_rate") })

        let book = try PriceBook(
            config: try Config.parse(
                yaml: base + """

                    pricing:
                      usd_rate: [{rate: 0.90, from: 2026-01-01}, {rate: 0.95, from: 2026-11-15}]
                    """))
        let entry = try #require(book.price(model: "gpt-4o-mini", provider: "openai", at: november10))
        let million = TokenCounts(input: 1_000_000)
        // 0.15 USD × 0.90 = 0.135 EUR; from 2026-11-15, × 0.95 = 0.1425; before the first rate, no price.
        #expect(book.cost(entry, million, tier: nil, at: november10)?.cost == (try money("0.135")))
        #expect(book.cost(entry, million, tier: nil, at: Timestamp.parse("2026-11-20T00:00:00Z")!)?.cost == (try money("0.1425")))
        #expect(book.cost(entry, million, tier: nil, at: Timestamp.parse("2025-12-31T00:00:00Z")!) == nil)
        // A conversion finer than 10⁻¹² is rounded half to even, once per call.
        #expect(PriceBook.converted(5, micros: 500_000) == 2 && PriceBook.converted(15, micros: 500_000) == 8)
        #expect(PriceBook.converted(7, micros: 333_333) == 2)
    }

    /// With no pricing section at all, today's models are priced, each by its own entry, and every price names the
    /// LiteLLM release it came from. The figures are LiteLLM's per-token prices, times a million tokens.
    @Test(arguments: [
        ("gpt-5", "openai", "1.25"), ("gpt-5-mini", "openai", "0.25"), ("gpt-4.1", "openai", "2"), ("gpt-4.1-mini", "openai", "0.4"),
        ("gpt-4.1-nano", "openai", "0.1"), ("o1", "openai", "15"), ("o3", "openai", "2"), ("o4-mini", "openai", "1.1"),
        ("claude-opus-4-5", "anthropic", "5"), ("claude-sonnet-4-5-20250929", "anthropic", "3"), ("claude-haiku-4-5", "anthropic", "1"),
        ("gemini-2.5-pro", "gemini", "1.25"), ("gemini-2.5-flash", "gemini", "0.3"), ("text-embedding-3-small", "openai", "0.02"),
        ("gpt-4o", "azure", "2.5"),
    ])
    func currentModelsArePricedOutOfTheBox(model: String, provider: String, millionInputTokens: String) throws {
        let config = try Config.parse(
            yaml: """
                providers:
                  - {name: \(provider), kind: \(provider), base_url: "https://example.com", api_key_env: KEY}
                """)
        let book = try PriceBook(config: config)
        let entry = try #require(book.price(model: model, provider: provider, at: Timestamp.parse("2026-11-22T12:00:00Z")!), "\(model)")
        // 100,000 tokens: below every long-context threshold (the lowest is 128k).
        #expect(entry.cost(TokenCounts(input: 100_000)) * 10 == (try money(millionInputTokens)), "\(model): \(entry.model)")
        #expect(entry.source.description == "builtin:litellm \(LiteLLMSnapshot.release)")
        #expect(book.warnings.isEmpty)
    }

    @Test func anExactNameInAnySourceBeatsAFuzzyMatchAndTheProvidersNameBeatsABareOne() throws {
        let book = PriceBook(
            entries: [
                PriceEntry(ModelPrice(model: "gpt-4o", input: try perMillion("2.50"), output: try perMillion("10")), source: .config),
                PriceEntry(
                    ModelPrice(model: "gpt-4o-2024-05-13", input: try perMillion("5"), output: try perMillion("15")),
                    source: .builtin(taken: "litellm test")),
                PriceEntry(
                    ModelPrice(model: "gemini-2.5-pro", input: try perMillion("9"), output: try perMillion("9")),
                    source: .litellm(file: "f.json")),
                PriceEntry(
                    ModelPrice(model: "gemini/gemini-2.5-pro", input: try perMillion("1.25"), output: try perMillion("10")),
                    source: .litellm(file: "f.json")),
            ],
            providers: [Provider(name: "google", kind: .gemini, baseURL: "https://example.com", apiKeyEnv: "K")])
        let now = Timestamp.parse("2026-11-22T12:00:00Z")!
        // The dated name is its own price (twice gpt-4o's), not gpt-4o's through the stripped name in a higher source.
        #expect(book.price(model: "gpt-4o-2024-05-13", provider: "openai", at: now)?.input == (try perMillion("5")))
        // A dated name no source lists still falls back to the stripped one.
        #expect(book.price(model: "gpt-4o-2024-08-06", provider: "openai", at: now)?.input == (try perMillion("2.50")))
        // Through a provider of kind gemini (whatever its name), LiteLLM's gemini/ entry beats the bare one.
        #expect(book.price(model: "gemini-2.5-pro", provider: "google", at: now)?.model == "gemini/gemini-2.5-pro")
        #expect(book.price(model: "gemini-2.5-pro", provider: "vertex", at: now)?.model == "gemini-2.5-pro")
    }

    @Test func aPriceFinerThanAPicoIsSkippedAndNamedNeverReadAsZero() throws {
        let json = """
            {"fine": {"input_cost_per_token": 1.5e-13, "output_cost_per_token": 1e-06},
             "fine-cache": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "cache_read_input_token_cost": 3.3e-13},
             "ok": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}
            """
        let parsed = try LiteLLMPrices.parse(Array(json.utf8), source: .litellm(file: "f.json"), what: "f.json")
        #expect(parsed.entries.map(\.model) == ["ok"], "the file is still used")
        #expect(parsed.skipped.count == 2)
        #expect(parsed.skipped[0].hasPrefix("fine-cache: cache_read_input_token_cost = 3.3e-13 is not a price Tally can hold exactly"))
        #expect(parsed.skipped[1].hasPrefix("fine: input_cost_per_token = 1.5e-13"))
        let book = PriceBook(entries: parsed.entries, warnings: parsed.skipped)
        #expect(book.price(model: "fine", provider: "openai", at: 0) == nil, "unpriced: counted and listed, not free")
        #expect(book.warnings.count == 2)
    }

    @Test(arguments: [
        ("gpt-4o-2024-08-06", "gpt-4o"), ("claude-3-5-haiku-20241022", "claude-3-5-haiku"), ("gpt-4o", nil), ("o4-mini", nil),
        ("model-12345678", nil),
    ])
    func datedSuffixes(model: String, stripped: String?) {
        #expect(PriceBook.strippedDate(model) == stripped)
    }
}
