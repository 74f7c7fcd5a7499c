import TallyConfig
import TallyCore
import TallyLedger

/// Every known price, and the rule that picks the one for a call.
///
/// Sources in falling priority: the config's `pricing.models`, the LiteLLM file, the built-in table. Within a source,
/// the name is matched exactly, then with the provider as a prefix (`openai/gpt-4o`), then with a dated suffix
/// stripped (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-3-5-haiku-20241022` → `claude-3-5-haiku`); of that name's
/// entries the one with the latest `from` not after the call is used.
public struct PriceBook: Sendable {
    /// Entries by source rank, then by name, each list sorted by `from` (nil first).
    private let bySource: [[String: [PriceEntry]]]

    public init(entries: [PriceEntry]) {
        var bySource: [[String: [PriceEntry]]] = [[:], [:], [:]]
        for entry in entries { bySource[entry.source.rank][entry.price.model, default: []].append(entry) }
        for rank in bySource.indices {
            for (model, list) in bySource[rank] {
                bySource[rank][model] = list.sorted { ($0.from ?? .min) < ($1.from ?? .min) }
            }
        }
        self.bySource = bySource
    }

    /// The book for a config: its own prices, the LiteLLM file it names (if any) and the built-in table.
    public init(config: Config) throws(LiteLLMPrices.LoadError) {
        var entries = BuiltinPrices.entries(currency: config.currency)
        if let file = config.pricing.litellmFile {
            entries += try LiteLLMPrices.load(path: config.resolve(file))
        }
        entries += config.pricing.models.map { PriceEntry($0, source: .config) }
        self.init(entries: entries)
    }

    /// The entry that prices a call to `model` through `provider` at `timestamp` (milliseconds), or nil if none does.
    public func price(model: String, provider: String?, at timestamp: Int64) -> PriceEntry? {
        schedule(model: model, provider: provider).entry(at: timestamp)
    }

    /// Every entry that could price calls to `model` through `provider`, in the order the rule tries them; look up
    /// once per model and ask it per call.
    public func schedule(model: String, provider: String?) -> PriceSchedule {
        var lists: [[PriceEntry]] = []
        for source in bySource {
            for name in Self.candidateNames(model: model, provider: provider) {
                if let list = source[name] { lists.append(list) }
            }
        }
        return PriceSchedule(lists: lists)
    }

    static func candidateNames(model: String, provider: String?) -> [String] {
        var names = [model]
        if let provider, !provider.isEmpty { names.append("\(provider)/\(model)") }
        if let stripped = strippedDate(model) {
            names.append(stripped)
            if let provider, !provider.isEmpty { names.append("\(provider)/\(stripped)") }
        }
        return names
    }

    /// `model` without a trailing `-YYYY-MM-DD` or `-YYYYMMDD`, or nil if it has none.
    static func strippedDate(_ model: String) -> String? {
        let bytes = Array(model.utf8)
        func digits(_ range: Range<Int>) -> Bool { range.allSatisfy { bytes[$0] >= 0x30 && bytes[$0] <= 0x39 } }
        let n = bytes.count
        if n > 11, bytes[n - 11] == UInt8(ascii: "-"), bytes[n - 6] == UInt8(ascii: "-"), bytes[n - 3] == UInt8(ascii: "-"),
            digits(n - 10..<n - 6), digits(n - 5..<n - 3), digits(n - 2..<n)
        {
            return String(decoding: bytes[0..<(n - 11)], as: UTF8.self)
        }
        if n > 9, bytes[n - 9] == UInt8(ascii: "-"), digits(n - 8..<n), bytes[n - 8] == UInt8(ascii: "2") {
            return String(decoding: bytes[0..<(n - 9)], as: UTF8.self)
        }
        return nil
    }
}

/// The price lists that may apply to one model, in rule order: the first list with an entry in force wins.
public struct PriceSchedule: Sendable {
    /// Each list sorted by `from`, nil first.
    let lists: [[PriceEntry]]

    /// True when no source knows the model at all.
    public var isEmpty: Bool { lists.isEmpty }

    /// The entry in force at `timestamp` (milliseconds): in the first list that has one, the latest `from` not after it.
    public func entry(at timestamp: Int64) -> PriceEntry? {
        position(at: timestamp).map { lists[$0.list][$0.index] }
    }

    /// Where `entry(at:)` finds its entry, so that a caller can cache per position instead of hashing entries.
    func position(at timestamp: Int64) -> (list: Int, index: Int)? {
        for (l, list) in lists.enumerated() {
            if let i = list.lastIndex(where: { ($0.from ?? .min) <= timestamp }) { return (l, i) }
        }
        return nil
    }

    subscript(position: (list: Int, index: Int)) -> PriceEntry { lists[position.list][position.index] }
}
