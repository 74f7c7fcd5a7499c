import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// Prices again the calls a new or changed price affects (`docs/pricing.md`, "Prices found or changed later").
///
/// Each provider × model remembers a fingerprint of everything that priced its calls: the entries that could apply,
/// in rule order, with their rates and dimensions, and the currency, dollar rates and estimate. When the fingerprint
/// changes (a config price added or corrected with `from:`, a new LiteLLM file, a refreshed built-in snapshot), the
/// model's calls are priced again with the same rule the ingest uses, and only those whose cost, price, notes or
/// estimate change are rewritten, with their rollups. Each change is journalled (the model, the calls, old and new
/// totals); a change to a month whose final report was written is recorded as that month's correction, and the
/// month's report is written again, marked corrected.
enum Repricing {
    struct Result: Sendable {
        /// One line per provider × model whose calls changed, as journalled.
        var changes: [String] = []
        var calls = 0
    }

    static func run(ledger: Ledger, config: Config, prices: PriceBook, asOf: Int64) throws(AuditError) -> Result {
        var calendar = try LocalCalendar.audit(config)
        let states = try ledger.pricingStates()
        let snapshots = try ledger.reportSnapshots()
        let currentMonth = Period.month(containing: calendar.day(of: asOf))
        var result = Result()
        var anyChanged = false
        for pair in try ledger.pricedPairs() {
            let schedule = prices.schedule(model: pair.model, provider: pair.provider)
            let fingerprint = Self.fingerprint(schedule, prices: prices, provider: pair.provider, config: config)
            let stored = states[Ledger.pairKey(provider: pair.provider, model: pair.model)]
            if stored == fingerprint { continue }
            guard stored != nil else {
                // Calls of a pair seen for the first time were priced by the ingest just now, with this book.
                try ledger.write { t in try t.setPricingState(providerID: pair.providerID, modelID: pair.modelID, fingerprint: fingerprint)
                }
                continue
            }
            var changed: [Repriced] = []
            var oldTotal = Money.zero
            var newTotal = Money.zero
            var wasUnpriced = 0
            var byMonth: [String: (calls: Int64, change: Money)] = [:]
            // A price row per entry, made once (its dimensions are JSON), not once per call.
            var storedPrices: [PriceEntry: StoredPrice] = [:]
            for event in try ledger.pricedEvents(providerID: pair.providerID, modelID: pair.modelID) {
                let price = prices.price(
                    schedule, tokens: event.tokens, tier: event.serviceTierName, provider: pair.provider, at: event.ts,
                    usageEstimated: event.notes & PriceNotes.usageEstimated.rawValue != 0)
                let cost = price.cost.flatMap { Int64(exactly: $0.picos) }
                let estimate = cost == nil ? price.estimate.flatMap { Int64(exactly: $0.picos) } : nil
                var stored: StoredPrice?
                if let entry = price.entry {
                    if let known = storedPrices[entry] {
                        stored = known
                    } else {
                        stored = StoredPrice(entry)
                        storedPrices[entry] = stored
                    }
                }
                let notes = price.notes.rawValue
                // Unchanged figures are left alone: a new source with the same rates keeps the call's price row.
                guard cost != event.cost || estimate != event.estimate || notes != event.notes || (stored == nil) != (event.price == nil)
                else { continue }
                let day = Int64(calendar.day(of: event.ts))
                changed.append(Repriced(event: event, day: day, cost: cost, price: stored, notes: notes, estimate: estimate))
                let before = Money(picos: Int128(event.cost ?? 0))
                let after = Money(picos: Int128(cost ?? 0))
                oldTotal += before
                newTotal += after
                if event.cost == nil { wasUnpriced += 1 }
                let month = Period.month(containing: Int(day))
                if month.firstDay < currentMonth.firstDay, snapshots[month.label]?.final == true, before != after {
                    byMonth[month.label, default: (0, .zero)].calls += 1
                    byMonth[month.label]!.change += after - before
                }
            }
            let subject = "model \(pair.model) via \(pair.provider)"
            let detail =
                changed.isEmpty
                ? ""
                : "\(changed.count) calls re-priced (\(wasUnpriced) of them unpriced before): \(oldTotal.exact) → \(newTotal.exact) "
                    + "\(config.currency), by \(Self.describe(schedule))"
            try ledger.write { t in
                if !changed.isEmpty {
                    try t.reprice(changed, providerID: pair.providerID, modelID: pair.modelID, currency: config.currency)
                    try t.appendJournal(at: asOf, kind: "reprice", subject: subject, detail: detail)
                    for (period, correction) in byMonth.sorted(by: { $0.key < $1.key }) {
                        try t.record(
                            PriceCorrection(
                                period: period, at: asOf, calls: correction.calls, change: correction.change,
                                detail: "\(subject): \(detail)"))
                    }
                }
                try t.setPricingState(providerID: pair.providerID, modelID: pair.modelID, fingerprint: fingerprint)
            }
            if !changed.isEmpty {
                anyChanged = true
                result.calls += changed.count
                result.changes.append("\(subject): \(detail)")
            }
        }
        if anyChanged { try ledger.write { t in try t.rebuildScanBlocks() } }
        return result
    }

    /// Everything that decides the price of a pair's calls, as text.
    static func fingerprint(_ schedule: PriceSchedule, prices: PriceBook, provider: String, config: Config) -> String {
        var parts = [config.currency]
        if config.currency != "USD" {
            parts.append(config.pricing.usdRates.map { "\($0.micros)@\($0.from.map(String.init) ?? "-")" }.joined(separator: ","))
        }
        if let rates = prices.estimateRates(provider: provider) {
            parts.append("estimate \(rates.input.perMillion)/\(rates.output.perMillion)")
        }
        for entry in schedule.entries {
            let p = StoredPrice(entry)
            parts.append(
                [
                    p.source, p.model, p.from.map(String.init) ?? "-", p.input.perMillion, p.output.perMillion,
                    p.cachedInput?.perMillion ?? "-",
                    p.cacheWrite?.perMillion ?? "-", p.reasoning?.perMillion ?? "-", p.dimensions ?? "-",
                ].joined(separator: " "))
        }
        return parts.joined(separator: "\n")
    }

    /// `config price for gpt-4o-mini from 2026-11-01`, naming the entries now in force.
    static func describe(_ schedule: PriceSchedule) -> String {
        guard let first = schedule.entries.first else { return "no price (estimated for budgets)" }
        return "\(first.source) price for \(first.model)"
            + (schedule.entries.count > 1 ? " and \(schedule.entries.count - 1) more entries" : "")
    }
}
