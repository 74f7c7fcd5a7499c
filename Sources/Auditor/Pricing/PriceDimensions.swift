import TallyConfig
import TallyCore

/// A price's dimensions beyond its plain rates, as the ledger's `prices.dimensions` keeps them (`docs/ledger.md`):
/// canonical JSON, members sorted, rates per million tokens as exact decimal text, so that equal prices are equal text
/// and a person can read what priced a call months later.
///
/// `{"cache_write_1h":"6.000000","long_context":[{"above":200000,"input":"2.500000","tiers":{"priority":{…}}}],
///   "tiers":{"priority":{"input":"2.500000","output":"20.000000"}},"web_search_request":"0.01"}`
enum PriceDimensions {
    /// The text for `price`, or nil when it has no dimension beyond the plain rates.
    static func json(_ price: ModelPrice) -> String? {
        var members: [(String, JSONValue)] = []
        if let rate = price.cacheWrite1h { members.append(("cache_write_1h", .string(rate.perMillion))) }
        if !price.longContext.isEmpty {
            members.append(
                (
                    "long_context",
                    .array(
                        price.longContext.map { band in
                            var fields = rateMembers(band.rates)
                            fields.insert(("above", .number(String(band.above))), at: 0)
                            if !band.tiers.isEmpty { fields.append(("tiers", tiers(band.tiers))) }
                            return .object(fields.map { (key: $0.0, value: $0.1) })
                        })
                ))
        }
        if !price.tiers.isEmpty { members.append(("tiers", tiers(price.tiers))) }
        if let perSearch = price.webSearchRequest { members.append(("web_search_request", .string(perSearch.exact))) }
        guard !members.isEmpty else { return nil }
        var out: [UInt8] = []
        JSONWriter.appendCanonical(.object(members.map { (key: $0.0, value: $0.1) }), to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func tiers(_ tiers: [String: TokenRates]) -> JSONValue {
        .object(
            tiers.sorted { $0.key < $1.key }.map { (key: $0.key, value: .object(rateMembers($0.value).map { (key: $0.0, value: $0.1) })) })
    }

    private static func rateMembers(_ rates: TokenRates) -> [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = []
        if let r = rates.input { fields.append(("input", .string(r.perMillion))) }
        if let r = rates.output { fields.append(("output", .string(r.perMillion))) }
        if let r = rates.cachedInput { fields.append(("cached_input", .string(r.perMillion))) }
        if let r = rates.cacheWrite { fields.append(("cache_write", .string(r.perMillion))) }
        if let r = rates.cacheWrite1h { fields.append(("cache_write_1h", .string(r.perMillion))) }
        return fields
    }
}
