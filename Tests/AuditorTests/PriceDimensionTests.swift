import Foundation
import TallyConfig
import TallyCore
import Testing

@testable import Auditor

/// Golden calls for each pricing dimension, with the money worked out by hand from the built-in LiteLLM entries (the
/// rates are quoted in each test, so that a refresh of the snapshot that changes them fails here and is read).
@Suite("Price dimensions: tier, long context, cache lifetime, web search")
struct PriceDimensionTests {
    let book = PriceBook(entries: BuiltinPrices.entries)
    let now = Timestamp.parse("2026-11-22T12:00:00Z")!

    func entry(_ model: String) throws -> PriceEntry {
        try #require(book.price(model: model, provider: nil, at: now), "\(model)")
    }
    func money(_ text: String) throws -> Money { try Money(parsing: text) }

    /// gpt-5 priority: input 2.5e-06, cached 2.5e-07, output 2e-05.
    /// 800 × 2.5e-6 + 200 × 2.5e-7 + 500 × 2e-5 = 0.002 + 0.00005 + 0.01 = 0.01205.
    @Test func priorityCallsAtThePriorityRate() throws {
        let gpt5 = try entry("gpt-5")
        let tokens = TokenCounts(input: 1_000, output: 500, cachedInput: 200)
        let priority = gpt5.cost(tokens, tier: "priority")
        #expect(priority == PricedCall(cost: try money("0.01205"), notes: []))
        // The standard rates (1.25e-06, 1.25e-07, 1e-05): 0.001 + 0.000025 + 0.005 = 0.006025, for each name of it.
        for standard in [nil, "default", "standard", "auto"] as [String?] {
            #expect(gpt5.cost(tokens, tier: standard) == PricedCall(cost: try money("0.006025"), notes: []))
        }
        // flex: 6.25e-07, 6.25e-08, 5e-06: 0.0005 + 0.0000125 + 0.0025 = 0.0030125.
        #expect(gpt5.cost(tokens, tier: "flex").cost == (try money("0.0030125")))
    }

    /// A tier the source has no price for is priced at the standard rate and noted, never dropped.
    @Test func aTierWithoutAPriceIsStandardAndNoted() throws {
        let priced = try entry("gpt-5").cost(TokenCounts(input: 1_000, output: 500, cachedInput: 200), tier: "scale")
        #expect(priced == PricedCall(cost: try money("0.006025"), notes: .tierUnpriced))
    }

    /// Anthropic's `batch` tier uses LiteLLM's `*_batches` fields. claude-sonnet-4-5 batches: input 1.5e-06, cache read
    /// 1.5e-07, cache creation 1.875e-06, output 7.5e-06.
    /// 1,000 × 1.5e-6 + 2,000 × 1.5e-7 + 500 × 1.875e-6 + 100 × 7.5e-6 = 0.0015 + 0.0003 + 0.0009375 + 0.00075 = 0.0034875.
    @Test func anthropicBatchTier() throws {
        let priced = try entry("claude-sonnet-4-5").cost(
            TokenCounts(input: 3_500, output: 100, cachedInput: 2_000, cacheWrite: 500), tier: "batch")
        #expect(priced == PricedCall(cost: try money("0.0034875"), notes: []))
    }

    /// gemini-2.5-pro above 200k: input 2.5e-06, cached 2.5e-07, output 1.5e-05 for the whole call.
    /// 200,000 × 2.5e-6 + 50,000 × 2.5e-7 + 1,000 × 1.5e-5 = 0.5 + 0.0125 + 0.015 = 0.5275.
    @Test func longContextPricesTheWholeCall() throws {
        let pro = try #require(book.price(model: "gemini-2.5-pro", provider: "gemini", at: now))
        #expect(pro.model == "gemini/gemini-2.5-pro")
        let long = TokenCounts(input: 250_000, output: 1_000, cachedInput: 50_000)
        #expect(pro.cost(long, tier: nil) == PricedCall(cost: try money("0.5275"), notes: .longContext))
        // Priority above 200k: 4.5e-06, 4.5e-07, 2.7e-05: 0.9 + 0.0225 + 0.027 = 0.9495.
        #expect(pro.cost(long, tier: "priority") == PricedCall(cost: try money("0.9495"), notes: .longContext))
        // Exactly at the threshold is not above it: 150,000 × 1.25e-6 + 50,000 × 1.25e-7 + 1,000 × 1e-5
        // = 0.1875 + 0.00625 + 0.01 = 0.20375.
        let atThreshold = TokenCounts(input: 200_000, output: 1_000, cachedInput: 50_000)
        #expect(pro.cost(atThreshold, tier: nil) == PricedCall(cost: try money("0.20375"), notes: []))
    }

    /// claude-sonnet-4-5: input 3e-06, cache read 3e-07, 5-minute write 3.75e-06, 1-hour write 6e-06, output 1.5e-05.
    /// 5,000 × 3e-6 + 1,000 × 3e-7 + 1,000 × 3.75e-6 + 3,000 × 6e-6 + 100 × 1.5e-5
    /// = 0.015 + 0.0003 + 0.00375 + 0.018 + 0.0015 = 0.03855.
    @Test func oneHourCacheWritesAtTheirOwnRate() throws {
        let tokens = TokenCounts(input: 10_000, output: 100, cachedInput: 1_000, cacheWrite: 4_000, cacheWrite1h: 3_000)
        #expect(try entry("claude-sonnet-4-5").cost(tokens, tier: nil) == PricedCall(cost: try money("0.03855"), notes: []))
    }

    /// A one-hour write with no one-hour price is priced at the write rate and noted.
    @Test func oneHourWritesWithoutAPriceAreNoted() throws {
        let entry = PriceEntry(
            ModelPrice(
                model: "m", input: TokenPrice(picosPerToken: 1_000_000), output: TokenPrice(picosPerToken: 2_000_000),
                cacheWrite: TokenPrice(picosPerToken: 1_250_000)), source: .config)
        let priced = entry.cost(TokenCounts(input: 100, cacheWrite: 100, cacheWrite1h: 40), tier: nil)
        #expect(priced == PricedCall(cost: Money(picos: 125_000_000), notes: .cacheWrite1hUnpriced))
    }

    /// claude-sonnet-4-5 prices a web search at 0.01 (`search_context_cost_per_query`); claude-haiku-4-5 has no such
    /// price, so its searches are noted and add nothing.
    @Test func webSearchesPerRequest() throws {
        let searched = TokenCounts(input: 1_000, output: 100, webSearchRequests: 2)
        // 1,000 × 3e-6 + 100 × 1.5e-5 + 2 × 0.01 = 0.003 + 0.0015 + 0.02 = 0.0245.
        #expect(try entry("claude-sonnet-4-5").cost(searched, tier: nil) == PricedCall(cost: try money("0.0245"), notes: []))
        // haiku: 1,000 × 1e-6 + 100 × 5e-6 = 0.0015, and the searches noted.
        #expect(try entry("claude-haiku-4-5").cost(searched, tier: nil) == PricedCall(cost: try money("0.0015"), notes: .webSearchUnpriced))
    }

    /// LiteLLM's field names, read the way its cost calculator reads them.
    @Test func liteLLMFieldNames() {
        typealias F = LiteLLMPrices.FieldName
        #expect(F("input_cost_per_token") == F(rate: \.input, above: nil, tier: nil))
        #expect(F("input_cost_per_token_batches") == F(rate: \.input, above: nil, tier: "batch"))
        #expect(F("output_cost_per_token_above_272k_tokens_priority") == F(rate: \.output, above: 272_000, tier: "priority"))
        #expect(F("cache_creation_input_token_cost_above_1hr") == F(rate: \.cacheWrite1h, above: nil, tier: nil))
        #expect(F("cache_creation_input_token_cost_above_1hr_above_100k_tokens") == F(rate: \.cacheWrite1h, above: 100_000, tier: nil))
        #expect(F("input_cost_per_token_above_128000_tokens") == F(rate: \.input, above: 128_000, tier: nil))
        #expect(F("cache_creation_input_token_cost_above_12hr") == nil, "a lifetime Tally is not told of")
        #expect(F("input_cost_per_audio_token") == nil)
        #expect(F("input_cost_per_token_standard") == nil, "the standard tier is the plain field")
    }

    /// A file entry with every dimension, read by the same reader as the built-in snapshot.
    @Test func aLiteLLMEntryWithEveryDimension() throws {
        let text = """
            {"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 4e-06, "cache_read_input_token_cost": 1e-07,
                   "cache_creation_input_token_cost": 1.25e-06, "cache_creation_input_token_cost_above_1hr": 2e-06,
                   "input_cost_per_token_priority": 2e-06, "input_cost_per_token_above_128k_tokens": 3e-06,
                   "output_cost_per_token_above_128k_tokens_priority": 9e-06,
                   "search_context_cost_per_query": {"search_context_size_low": 0.02, "search_context_size_medium": 0.03}}}
            """
        let parsed = try LiteLLMPrices.parse(Array(text.utf8), source: .litellm(file: "t.json"), what: "test")
        let price = try #require(parsed.entries.first).price
        #expect(price.cacheWrite1h == TokenPrice(picosPerToken: 2_000_000))
        #expect(price.tiers == ["priority": TokenRates(input: TokenPrice(picosPerToken: 2_000_000))])
        #expect(
            price.longContext == [
                LongContextRates(
                    above: 128_000, rates: TokenRates(input: TokenPrice(picosPerToken: 3_000_000)),
                    tiers: ["priority": TokenRates(output: TokenPrice(picosPerToken: 9_000_000))])
            ])
        #expect(price.webSearchRequest == (try money("0.03")), "medium context, the providers' default")
        #expect(
            PriceDimensions.json(price)
                == #"{"cache_write_1h":"2.000000","long_context":[{"above":128000,"input":"3.000000","tiers":{"priority":{"output":"9.000000"}}}],"tiers":{"priority":{"input":"2.000000"}},"web_search_request":"0.03"}"#
        )
        // Priority above 128k: input from the standard band (3e-6, the tier's band has none), output from the tier's
        // band (9e-6): 200,000 × 3e-6 + 1,000 × 9e-6 = 0.6 + 0.009 = 0.609.
        let entry = PriceEntry(price, source: .litellm(file: "t.json"))
        #expect(entry.cost(TokenCounts(input: 200_000, output: 1_000), tier: "priority").cost == (try money("0.609")))
    }

    /// The config prices the same dimensions, each optional, per million tokens (a web search per request).
    /// Priority above 100k: input 4.00 (the tier's band), cached 0.40 (the standard band), output 24.00 (the tier):
    /// 150,000 × 4e-6 + 50,000 × 0.4e-6 + 1,000 × 24e-6 + 1 × 0.015 = 0.6 + 0.02 + 0.024 + 0.015 = 0.659.
    @Test func configPricesCarryTheSameDimensions() throws {
        let config = try Config.parse(
            yaml: """
                pricing:
                  models:
                    - model: house-model
                      input: 1.00
                      output: 8.00
                      cached_input: 0.10
                      cache_write: 1.25
                      cache_write_1h: 2.00
                      web_search_request: 0.015
                      tiers:
                        priority: {input: 2.00, output: 24.00}
                        batches: {input: 0.50, output: 4.00}
                      long_context:
                        - above: 100000
                          input: 2.00
                          cached_input: 0.40
                          tiers:
                            priority: {input: 4.00}
                """)
        let book = try PriceBook(config: config)
        let entry = try #require(book.price(model: "house-model", provider: nil, at: now))
        #expect(entry.source == .config)
        #expect(Set(entry.tiers.keys) == ["priority", "batch"])
        let call = TokenCounts(input: 200_000, output: 1_000, cachedInput: 50_000, webSearchRequests: 1)
        #expect(entry.cost(call, tier: "priority") == PricedCall(cost: try money("0.659"), notes: .longContext))
        // batch, short: 1,000 × 0.5e-6 + 100 × 4e-6 = 0.0005 + 0.0004 = 0.0009.
        #expect(entry.cost(TokenCounts(input: 1_000, output: 100), tier: "batch").cost == (try money("0.0009")))
    }

    /// Mistakes in the new keys are reported with the field, like every other config error.
    @Test func configPriceDimensionMistakes() {
        do {
            _ = try Config.parse(
                yaml: """
                    pricing:
                      models:
                        - model: m
                          input: 1
                          output: 2
                          tiers:
                            default: {input: 1}
                            flex: {output: 1}
                          long_context:
                            - {input: 2}
                    """, file: "t.yaml")
            Issue.record("the config parsed")
        } catch {
            #expect(
                error.diagnostics.map(\.field).sorted() == [
                    "pricing.models[0].long_context[0].above", "pricing.models[0].tiers.default", "pricing.models[0].tiers.flex.input",
                ])
        }
    }
}
