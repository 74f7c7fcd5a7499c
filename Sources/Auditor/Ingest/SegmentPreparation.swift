import TallyConfig
import TallyCore
import UsageLog

/// A rollup group as a parse task sees it: string indexes of its segment, not ledger ids.
struct LocalRollupKey: Hashable {
    var day: Int32
    var key: Int32
    var provider: Int32
    var model: Int32
    var endUser: Int32
    var tags: Int32
    var priced: Bool

    init(_ event: ParsedEvent) {
        day = event.day
        key = event.key
        provider = event.provider
        model = event.model
        endUser = event.endUser
        tags = event.tags
        priced = !(event.hasUsage && event.priceRef < 0)
    }
}

extension ParsedSegment {
    /// Prices every call, finds its local day, attributes its key and sums the rollup groups: work done in the parse
    /// task, on any core, so that the one writer only maps strings to ids and inserts.
    mutating func prepare(config: Config, prices: PriceBook, calendar: LocalCalendar) {
        var calendar = calendar
        var schedules: [Int64: PriceSchedule] = [:]
        var entryRefs: [PriceEntry: Int32] = [:]
        var overflowing: [Int] = []
        for i in events.indices {
            events[i].day = Int32(calendar.day(of: events[i].timestamp))
            guard events[i].hasUsage else { continue }
            let pair = Int64(events[i].model) << 32 | Int64(events[i].provider)
            let schedule: PriceSchedule
            if let known = schedules[pair] { schedule = known } else {
                schedule = prices.schedule(model: strings[events[i].model], provider: strings[events[i].provider])
                schedules[pair] = schedule
            }
            guard let entry = schedule.entry(at: events[i].timestamp) else { continue }
            let e = events[i]
            let money = entry.cost(input: e.input, output: e.output, cachedInput: e.cachedInput, cacheWrite: e.cacheWrite, reasoning: e.reasoning)
            guard let picos = Int64(exactly: money.picos) else {
                overflowing.append(i)
                quarantined.append(QuarantinedLine(line: Int(e.line), kind: LineError.Kind.invalidUsage.rawValue,
                                                   reason: "the call's cost (\(money)) is more than the ledger holds for one call",
                                                   length: 0, text: []))
                continue
            }
            let ref: Int32
            if let known = entryRefs[entry] { ref = known } else {
                ref = Int32(priceEntries.count)
                priceEntries.append(entry)
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

extension RollupSums {
    mutating func add(_ event: ParsedEvent) {
        add(outcome: Int(event.outcome), input: event.input, output: event.output,
            cachedInput: event.cachedInput, cacheWrite: event.cacheWrite, reasoning: event.reasoning, cost: event.cost)
    }

    /// Takes back an event that turned out to be in the ledger already.
    mutating func remove(_ event: ParsedEvent) {
        var negative = RollupSums()
        negative.add(event)
        requests -= negative.requests
        failed -= negative.failed
        rejected -= negative.rejected
        input -= negative.input
        output -= negative.output
        cachedInput -= negative.cachedInput
        cacheWrite -= negative.cacheWrite
        reasoning -= negative.reasoning
        cost -= negative.cost
    }

    mutating func merge(_ other: RollupSums) {
        requests += other.requests
        failed += other.failed
        rejected += other.rejected
        input += other.input
        output += other.output
        cachedInput += other.cachedInput
        cacheWrite += other.cacheWrite
        reasoning += other.reasoning
        cost += other.cost
    }
}
