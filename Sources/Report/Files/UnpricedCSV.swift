import TallyCore

/// `unpriced.csv`: models that had calls with usage but no price, and their tokens.
public struct UnpricedCSV: TextReportFile {
    public let name = "unpriced.csv"

    public init() {}

    public func render(_ report: PeriodReport) -> String {
        var out = ""
        CSV.append(
            [
                "provider", "model", "requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
                "reasoning_tokens",
            ], to: &out)
        for u in report.unpriced {
            CSV.append(
                [
                    CSV.text(u.provider), CSV.text(u.model), String(u.requests), String(u.tokens.input), String(u.tokens.cachedInput),
                    String(u.tokens.cacheWrite), String(u.tokens.output), String(u.tokens.reasoning),
                ], to: &out)
        }
        return out
    }
}
