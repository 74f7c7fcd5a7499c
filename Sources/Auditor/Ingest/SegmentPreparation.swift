import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

extension ParsedSegment {
    /// Prices every call, finds its local day, attributes its key and sums the rollup groups: work done in the parse
    /// task, on any core, so that the one writer only maps strings to ids and inserts.
    mutating func prepare(config: Config, prices: PriceBook, calendar: LocalCalendar) {
        var calendar = calendar
        var schedules: [Int64: PriceSchedule] = [:]
        var entryRefs: [PriceEntry: Int32] = [:]
        var overflowing: [Int] = []
        var tierKeys: [Int32: String?] = [:]
        for i in events.indices {
            events[i].day = Int32(calendar.day(of: events[i].timestamp))
            guard events[i].hasUsage else { continue }
            let pair = Int64(events[i].model) << 32 | Int64(events[i].provider)
            let schedule: PriceSchedule
            if let known = schedules[pair] {
                schedule = known
            } else {
                schedule = prices.schedule(model: strings[events[i].model], provider: strings[events[i].provider])
                schedules[pair] = schedule
            }
            let e = events[i]
            // Each distinct tier name is mapped once per segment (most calls report one of two or three).
            var tierKey: String?
            if e.serviceTier >= 0 {
                if let known = tierKeys[e.serviceTier] {
                    tierKey = known
                } else {
                    tierKey = ServiceTier.priceKey(strings[e.serviceTier])
                    tierKeys[e.serviceTier] = .some(tierKey)
                }
                // Reports show calls apart by tier only where the tier is not the standard one.
                if tierKey != nil { events[i].tierApart = true }
            }
            let price = prices.price(
                schedule, tokens: e.tokens, tierKey: tierKey, provider: strings[e.provider], at: e.timestamp,
                usageEstimated: e.usageEstimated)
            events[i].priceNotes = price.notes.rawValue
            guard let entry = price.entry, let money = price.cost else {
                // Unpriced: it counts toward budgets at the conservative estimate, shown as estimated.
                if let estimate = price.estimate, let picos = Int64(exactly: estimate.picos) { events[i].cost = picos }
                continue
            }
            guard let picos = Int64(exactly: money.picos) else {
                overflowing.append(i)
                quarantined.append(
                    QuarantinedLine(
                        line: Int(e.line), kind: LineError.Kind.invalidUsage.rawValue,
                        reason: "the call's cost (\(money)) is more than the ledger holds for one call",
                        length: 0, text: [], ts: e.timestamp))
                continue
            }
            let ref: Int32
            if let known = entryRefs[entry] {
                ref = known
            } else {
                ref = Int32(priceRows.count)
                priceRows.append(StoredPrice(entry))
                entryRefs[entry] = ref
            }
            events[i].priceRef = ref
            events[i].cost = picos
        }
        for i in overflowing.reversed() { events.remove(at: i) }

        for event in events {
            rollups[LocalRollupKey(event), default: RollupSums()].add(event)
            if attributions[event.key] == nil {
                attributions[event.key] = Attribution.resolving(key: strings[event.key], config: config)
            }
        }
    }
}

extension StoredPrice {
    /// How the ledger stores a price entry: its source as text, the model and from, and the per-token prices.
    init(_ entry: PriceEntry) {
        let p = entry.price
        self.init(
            source: entry.source.description, model: p.model, from: p.from, input: p.input, output: p.output,
            cachedInput: p.cachedInput, cacheWrite: p.cacheWrite, reasoning: p.reasoning, dimensions: PriceDimensions.json(p))
    }
}
