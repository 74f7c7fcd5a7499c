import TallyLedger

/// One call as the waste rules see it: ids are the ledger's (attribution, model), money is pico-units.
struct WasteCall {
    var ts: Int64
    var attr: Int32
    /// The key's position in the scan's key table (attributions of one key share it).
    var key: Int32
    var team: Int32
    var model: Int32
    var ok: Bool
    var failed: Bool
    var cost: Int64
    var hash: Int64?
    var sim: UInt64?
}

/// Finds duplicates, retry loops and runaway keys in one pass over calls in time order, and hands on the calls that
/// are not repeats to `NearDuplicates` (which runs on its own thread). It keeps only what a window can still reach:
/// memory grows with the calls inside the longest window and with the findings, not with the calls scanned.
struct WasteDetector {
    let rules: WasteRules
    /// Calls before this only open windows; findings count calls from here on.
    let periodStart: Int64

    // Working state for the clusters and episodes under construction. A month can hold hundreds of thousands, so a
    // cluster is kept small: 80 bytes, no array for its one attribution (the common case), runaway peaks apart.
    struct Cluster {
        var first: Int64
        var last: Int64
        var calls = 0
        var repeats = 0
        var errors = 0
        var cost: Int64 = 0
        var hash: Int64
        /// The attributions after the first, in the order seen.
        private var moreAttrs: [Int32] = []
        var team: Int32
        var model: Int32
        var key: Int32 = -1
        private var firstAttr: Int32 = -1

        init(first: Int64, last: Int64, team: Int32, model: Int32, hash: Int64) {
            self.first = first
            self.last = last
            self.team = team
            self.model = model
            self.hash = hash
        }

        /// The attributions of the cluster's calls, each once, in the order seen.
        var attrs: [Int32] { firstAttr < 0 ? [] : [firstAttr] + moreAttrs }
        /// The attribution when there is exactly one.
        var onlyAttr: Int32? { firstAttr >= 0 && moreAttrs.isEmpty ? firstAttr : nil }

        mutating func add(attr: Int32) {
            if firstAttr < 0 {
                firstAttr = attr
            } else if attr != firstAttr, !moreAttrs.contains(attr) {
                moreAttrs.append(attr)
            }
        }

        /// A call that repeats the cluster's prompt: counted, and its cost is the cluster's.
        mutating func addRepeat(_ call: WasteCall) {
            calls += 1
            repeats += 1
            cost += call.cost
            if call.failed { errors += 1 }
            last = call.ts
            add(attr: call.attr)
        }
    }

    /// The clusters and episodes of a scan, without the tables that found them.
    struct Found {
        var exact: [Cluster]
        var near: [Cluster] = []
        var loops: [Cluster]
        var runaways: [Cluster]
        var runawayPeaks: [(requests: Int, spend: Int128)]
        var callsInPeriod: Int
    }

    /// What the scan found so far; `near` is `NearDuplicates`' to fill in.
    var found: Found {
        Found(exact: exact, loops: loops, runaways: runaways, runawayPeaks: runawayPeaks, callsInPeriod: callsInPeriod)
    }

    private(set) var exact: [Cluster] = []
    private(set) var loops: [Cluster] = []
    private(set) var runaways: [Cluster] = []
    /// By runaway episode: the most requests in a minute and the most spend in an hour.
    private(set) var runawayPeaks: [(requests: Int, spend: Int128)] = []

    // Exact duplicates: per (prompt, model, team), the start of the open window and the cluster, if any.
    private struct PromptState {
        var windowStart: Int64
        var opener: Int32
        var cluster: Int32
    }
    private var prompts = UInt64Table(placeholder: PromptState(windowStart: 0, opener: 0, cluster: -1))
    private var promptsAtSweep = 1 << 16

    /// One 64-bit key for a prompt hash with a model and a team. Prompt hashes are HMACs, so two different triples
    /// share a key only by a 1-in-2^64 accident.
    @inline(__always) static func promptKey(_ hash: Int64, _ model: Int32, _ team: Int32) -> UInt64 {
        UInt64(bitPattern: hash) ^ (UInt64(UInt32(bitPattern: model)) &* 0xFF51_AFD7_ED55_8CCD)
            ^ (UInt64(UInt32(bitPattern: team)) &* 0xC4CE_B9FE_1A85_EC53)
    }

    // Retry loops: per (key, prompt), the calls within `retryWithin`.
    private struct LoopCall {
        var ts: Int64
        var cost: Int64
        var failed: Bool
        var attr: Int32
        var counted: Bool
    }
    /// A prompt seen once in the window keeps its call in `lone`; an array is only made for a second one.
    private struct LoopState {
        var lone: LoopCall?
        var calls: [LoopCall] = []
        var episode: Int32 = -1
        var last: Int64 = .min
    }
    private var retries = UInt64Table(capacity: 1 << 14, placeholder: LoopState())
    private var retriesAtSweep = 1 << 14

    // Runaways: per key, the calls of the last hour.
    private struct RateCall {
        var ts: Int64
        var cost: Int64
    }
    private struct RateState {
        var calls: [RateCall] = []
        var head = 0
        var minuteHead = 0
        var spend: Int128 = 0
        var episode: Int32 = -1
        /// Calls before this position are counted in an episode already.
        var counted = 0
        /// Whether the key's previous call found it over a limit.
        var wasOver = false
    }
    private var rates: [RateState] = []

    private var now: Int64 = .min
    private(set) var callsInPeriod = 0

    init(rules: WasteRules, periodStart: Int64) {
        self.rules = rules
        self.periodStart = periodStart
    }

    /// Adds calls in time order, appending to `near` those the near-duplicate rule is to see (a prompt with a SimHash
    /// that is not an exact repeat). The tables are read at random, so the memory a call will touch is requested a
    /// few calls ahead: the waits for several calls then overlap instead of following one another.
    mutating func add(_ calls: [WasteCall], near: inout [WasteCall]) {
        let ahead = 6
        calls.withUnsafeBufferPointer { calls in
            for i in calls.indices {
                if i + ahead < calls.count { prefetch(calls[i + ahead]) }
                if add(calls[i]) { near.append(calls[i]) }
            }
        }
    }

    @inline(__always) private func prefetch(_ call: WasteCall) {
        guard let hash = call.hash else { return }
        prompts.prefetch(Self.promptKey(hash, call.model, call.team))
        retries.prefetch(Self.retryKey(hash, call.key))
    }

    /// Adds one call; true when the near-duplicate rule is to see it.
    mutating func add(_ call: WasteCall) -> Bool {
        now = call.ts
        let counts = call.ts >= periodStart
        if counts { callsInPeriod += 1 }
        var forNear = false
        if let hash = call.hash {
            forNear = !duplicate(call, hash: hash, counts: counts) && call.sim != nil
            retryLoop(call, hash: hash, counts: counts)
        }
        runaway(call, counts: counts)
        if prompts.count > 2 * promptsAtSweep { sweepPrompts() }
        if retries.count > 2 * retriesAtSweep { sweepRetries() }
        return forNear
    }

    // MARK: Exact duplicates

    /// Whether `call` repeats a successful call of the same prompt within the window (and so is waste).
    private mutating func duplicate(_ call: WasteCall, hash: Int64, counts: Bool) -> Bool {
        let position = prompts.findOrInsert(
            Self.promptKey(hash, call.model, call.team),
            PromptState(windowStart: .min, opener: call.attr, cluster: -1))
        if prompts[position].windowStart != .min, call.ts - prompts[position].windowStart <= rules.duplicateWindow {
            guard counts else { return true }
            if prompts[position].cluster < 0 {
                prompts[position].cluster = Int32(exact.count)
                let start = prompts[position].windowStart
                var cluster = Cluster(first: start, last: start, team: call.team, model: call.model, hash: hash)
                cluster.calls = 1
                cluster.add(attr: prompts[position].opener)
                exact.append(cluster)
            }
            exact[Int(prompts[position].cluster)].addRepeat(call)
            return true
        }
        // Not a repeat: a successful call opens a new window (a cache would have answered repeats from it).
        guard call.ok else { return false }
        prompts[position].windowStart = call.ts
        prompts[position].opener = call.attr
        let cluster = Int(prompts[position].cluster)
        if cluster >= 0, counts {
            exact[cluster].calls += 1
            exact[cluster].last = call.ts
            exact[cluster].add(attr: call.attr)
        }
        return false
    }

    /// Forgets prompts whose window has closed and that formed no cluster.
    private mutating func sweepPrompts() {
        let horizon = now - rules.duplicateWindow
        prompts.filter { $0.cluster >= 0 || $0.windowStart >= horizon }
        promptsAtSweep = max(prompts.count, 1 << 16)
    }

    // MARK: Retry loops

    private mutating func retryLoop(_ call: WasteCall, hash: Int64, counts: Bool) {
        let position = retries.findOrInsert(Self.retryKey(hash, call.key), LoopState())
        let horizon = call.ts - rules.retryWithin
        let this = LoopCall(ts: call.ts, cost: call.cost, failed: call.failed, attr: call.attr, counted: false)
        retries[position].last = call.ts
        if retries[position].calls.isEmpty {
            guard rules.retryMinRepeats <= 1 || (retries[position].lone.map { $0.ts >= horizon } ?? false) else {
                retries[position].lone = this
                return
            }
        }
        var state = retries[position]
        retries[position] = LoopState()
        if let lone = state.lone {
            state.calls = [lone]
            state.lone = nil
        }
        if let stale = state.calls.firstIndex(where: { $0.ts >= horizon }) {
            state.calls.removeFirst(stale)
        } else {
            state.calls.removeAll(keepingCapacity: true)
        }
        state.calls.append(this)
        if state.calls.count >= rules.retryMinRepeats, counts {
            // A window holding enough identical calls: they belong to the current loop, or start a new one.
            if state.episode < 0 || loops[Int(state.episode)].last < state.calls[0].ts {
                state.episode = Int32(loops.count)
                var loop = Cluster(first: state.calls[0].ts, last: call.ts, team: call.team, model: call.model, hash: hash)
                loop.key = call.key
                loops.append(loop)
            }
            let i = Int(state.episode)
            for index in state.calls.indices where !state.calls[index].counted {
                let counted = state.calls[index]
                state.calls[index].counted = true
                loops[i].calls += 1
                // Every call after the loop's first repeats it.
                if loops[i].calls > 1 {
                    loops[i].repeats += 1
                    loops[i].cost += counted.cost
                }
                if counted.failed { loops[i].errors += 1 }
                if loops[i].model != call.model { loops[i].model = -1 }
                loops[i].add(attr: counted.attr)
            }
            loops[i].last = call.ts
        }
        retries[position] = state
    }

    @inline(__always) private static func retryKey(_ hash: Int64, _ key: Int32) -> UInt64 {
        UInt64(bitPattern: hash) ^ (UInt64(UInt32(bitPattern: key)) &* 0x9FB2_1C65_1E98_DF25)
    }

    private mutating func sweepRetries() {
        let horizon = now - rules.retryWithin
        retries.filter { $0.last >= horizon }
        retriesAtSweep = max(retries.count, 1 << 14)
    }

    // MARK: Runaways

    private mutating func runaway(_ call: WasteCall, counts: Bool) {
        let k = Int(call.key)
        if k >= rates.count { rates.append(contentsOf: repeatElement(RateState(), count: k + 1 - rates.count)) }
        var state = rates[k]
        rates[k] = RateState()
        state.calls.append(RateCall(ts: call.ts, cost: call.cost))
        state.spend += Int128(call.cost)
        while state.calls[state.head].ts < call.ts - 3_600_000 {
            state.spend -= Int128(state.calls[state.head].cost)
            state.head += 1
        }
        state.minuteHead = max(state.minuteHead, state.head)
        while state.calls[state.minuteHead].ts <= call.ts - 60_000 { state.minuteHead += 1 }
        let perMinute = state.calls.count - state.minuteHead
        let over = perMinute > rules.runawayRequestsPerMinute || state.spend > rules.runawaySpendPerHour
        if over && counts {
            // An episode runs from the call that took the key over a limit to the last call still over it; going over
            // again within a minute continues it.
            if state.episode < 0 || (!state.wasOver && runaways[Int(state.episode)].last < call.ts - 60_000) {
                state.episode = Int32(runaways.count)
                var episode = Cluster(first: call.ts, last: call.ts, team: call.team, model: call.model, hash: 0)
                episode.key = call.key
                runaways.append(episode)
                runawayPeaks.append((0, 0))
                state.counted = state.calls.count - 1
            }
            let i = Int(state.episode)
            for rate in state.calls[max(state.counted, state.head)...] {
                runaways[i].calls += 1
                runaways[i].repeats += 1
                runaways[i].cost += rate.cost
            }
            state.counted = state.calls.count
            runaways[i].last = call.ts
            runaways[i].add(attr: call.attr)
            if runaways[i].model != call.model { runaways[i].model = -1 }
            runawayPeaks[i].requests = max(runawayPeaks[i].requests, perMinute)
            runawayPeaks[i].spend = max(runawayPeaks[i].spend, state.spend)
            if call.failed { runaways[i].errors += 1 }
        }
        state.wasOver = over && counts
        // Keep the buffer from growing without bound: drop what fell out of the hour once it is most of it.
        if state.head > 4096, state.head * 2 > state.calls.count {
            state.calls.removeFirst(state.head)
            state.minuteHead -= state.head
            state.counted = max(0, state.counted - state.head)
            state.head = 0
        }
        rates[k] = state
    }
}
