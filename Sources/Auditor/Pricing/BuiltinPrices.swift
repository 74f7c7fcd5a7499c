import TallyConfig
import TallyCore
import TallyLedger

/// Tally's built-in prices: LiteLLM's maintained price file as one `litellm` release ships it (`LiteLLMSnapshot`,
/// refreshed by `scripts/update-prices.sh`), read by the same reader as `pricing.litellm_file`. A config's prices and a
/// LiteLLM file of its own come first. Nothing is downloaded at audit time.
public enum BuiltinPrices {
    /// The `litellm` release the prices come from, as every call they price records it (`builtin:litellm 1.110.2`).
    public static let taken = "litellm \(LiteLLMSnapshot.release)"

    /// The snapshot, parsed once. It is fixed text that tests read: a defect in it fails them, not an audit.
    private static let snapshot: LiteLLMPrices.Parsed = {
        do {
            return try LiteLLMPrices.parse(Array(LiteLLMSnapshot.json.utf8), source: .builtin(taken: taken), what: "the built-in prices")
        } catch {
            preconditionFailure("the built-in price snapshot does not parse: \(error)")
        }
    }()

    /// The prices as entries, in USD: a config in another currency uses them only through `pricing.usd_rate`.
    public static var entries: [PriceEntry] { snapshot.entries }

    /// Models of the snapshot skipped because a price could not be held exactly.
    public static var skipped: [String] { snapshot.skipped }
}
