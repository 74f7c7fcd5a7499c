import Foundation
import Report
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// Reads a period's calls from the ledger's scan blocks in time order, runs the waste rules over them, and keeps the findings in
/// the ledger's `waste` table (replacing that period's earlier findings, since each run recomputes them).
public enum WasteScan {
    /// Findings for calls from `from` up to `to` (milliseconds, both included), labelled `label`.
    public static func run(ledger: Ledger, config: Config, from: Int64, to: Int64, label: String) throws(AuditError) -> WasteResult {
        let rules = WasteRules(config.audit)
        let names = Names(attributions: try ledger.attributions(), models: try ledger.dimensionValues(.model))
        // The rules' tables (most of the scan's memory) are gone once `scan` returns: the store needs only the clusters.
        let found = try scan(ledger: ledger, rules: rules, names: names, from: from, to: to)
        // Clusters go into the ledger straight from the detector's numbers; a finding (with its strings) is made only
        // for the few a run prints.
        var result = WasteResult(periodLabel: label, findings: [], calls: found.callsInPeriod)
        // Sums per kind, kept as plain numbers while the rows go by (clusters come kind after kind).
        var sums: [(kind: WasteKind, clusters: Int, cost: Int128)] = []
        var total: Int128 = 0
        try ledger.replaceWaste(period: label) { insert in
            try names.forEachCluster(found) { cluster, kind, rank, index in
                let peak = kind == .runaway ? found.runawayPeaks[index] : nil
                try insert(names.row(cluster, kind, rules: rules, currency: config.currency, peak: peak))
                if sums.last?.kind != kind { sums.append((kind, 0, 0)) }
                sums[sums.count - 1].clusters += 1
                sums[sums.count - 1].cost += Int128(cluster.cost)
                if rules.countsAsWaste(kind) { total += Int128(cluster.cost) }
                if kind == .retryLoop || kind == .runaway || rank < WasteResult.kept {
                    result.findings.append(names.finding(cluster, kind, rules: rules, currency: config.currency, peak: peak))
                }
            }
        }
        for sum in sums {
            result.counts[sum.kind] = sum.clusters
            result.costs[sum.kind] = Money(picos: sum.cost)
        }
        result.total = Money(picos: total)
        return result
    }

    /// Reads the calls of the range in time order and runs the rules over them. This thread reads the ledger and finds
    /// exact duplicates, retry loops and runaways; the calls that are not repeats go on, batch by batch, to the
    /// near-duplicate rule on another thread.
    private static func scan(
        ledger: Ledger, rules: WasteRules, names: Names, from: Int64, to: Int64
    ) throws(AuditError) -> WasteDetector.Found {
        var detector = WasteDetector(rules: rules, periodStart: from)
        let pipeline = NearThread(NearDuplicates(rules: rules, periodStart: from))
        defer { _ = pipeline.finish() }  // on a failed read, so the thread ends
        var batch: [WasteCall] = []
        batch.reserveCapacity(NearThread.batchSize)
        var forNear: [WasteCall] = []
        forNear.reserveCapacity(NearThread.batchSize)
        func send(_ call: WasteCall) {
            batch.append(call)
            if batch.count == NearThread.batchSize { flush() }
        }
        func flush() {
            detector.add(batch, near: &forNear)
            batch.removeAll(keepingCapacity: true)
            if forNear.count >= NearThread.batchSize / 2 {
                pipeline.send(forNear)
                forNear.removeAll(keepingCapacity: true)
            }
        }
        try ledger.scanCalls(from: from - rules.lookBack, to: to) { call in
            let owner = names.owner(Int(call.attr))
            send(
                WasteCall(
                    ts: call.ts, attr: call.attr, key: owner.key, team: owner.team, model: call.model,
                    ok: call.flags & ScanCall.ok != 0, failed: call.flags & ScanCall.failed != 0, cost: call.cost,
                    hash: call.flags & ScanCall.hasHash != 0 ? call.hash : nil,
                    sim: call.flags & ScanCall.hasSim != 0 ? call.sim : nil))
        }
        flush()
        pipeline.send(forNear)
        var found = detector.found
        found.near = pipeline.finish()?.near ?? []
        return found
    }

    /// The findings an audit stored for the month `label`, in stored order.
    public static func stored(ledger: Ledger, label: String) throws(AuditError) -> [WasteFinding] {
        try ledger.storedWasteFindings(period: label)
    }

    /// The runaway findings of the latest month that has any.
    static func storedRunaways(ledger: Ledger) throws(AuditError) -> [WasteFinding] {
        guard let label = try ledger.latestWastePeriod(kind: .runaway) else { return [] }
        return try stored(ledger: ledger, label: label).filter { $0.kind == .runaway }
    }

    /// Runs the near-duplicate rule on its own thread over the batches it is sent, so that the scan uses two cores.
    private final class NearThread: @unchecked Sendable {
        static let batchSize = 8192
        private let condition = NSCondition()
        private var queue: [[WasteCall]] = []
        private var closed = false
        private var done = false
        /// Nil once `finish` has handed it over.
        private var detector: NearDuplicates?

        init(_ detector: NearDuplicates) {
            self.detector = detector
            let thread = Thread { [self] in run() }
            thread.stackSize = 1 << 20
            thread.start()
        }

        /// Hands over a batch, waiting while the detector is more than a few batches behind.
        func send(_ batch: [WasteCall]) {
            condition.lock()
            while queue.count >= 8 { condition.wait() }
            queue.append(batch)
            condition.broadcast()
            condition.unlock()
        }

        /// Waits for the detector to finish what it was sent and hands it over (once; nil after that).
        func finish() -> NearDuplicates? {
            condition.lock()
            closed = true
            condition.broadcast()
            while !done { condition.wait() }
            condition.unlock()
            return detector.take()
        }

        private func run() {
            // Taken, not copied: a copy would share the tables and copy them on the first change.
            var detector = self.detector.take()!
            while true {
                condition.lock()
                while queue.isEmpty && !closed { condition.wait() }
                if queue.isEmpty {
                    self.detector = detector
                    done = true
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                let batch = queue.removeFirst()
                condition.broadcast()
                condition.unlock()
                detector.add(batch)
            }
        }
    }

    /// The ledger's attributions and model names, numbered for the detector.
    private struct Names {
        /// By attribution id (small, dense): the key's and the team's numbers.
        var owners: [(key: Int32, team: Int32)] = []
        var keyNames: [String] = []
        /// By key number: the place of its name among all key names compared as UTF-8 bytes (as SQLite compares).
        var keyByteRank: [Int32] = []
        var teamNames: [String] = []
        var models: [Int32: String] = [:]
        /// Key and user names as UTF-8, each list in name order; by attribution id, the place of its key and of its
        /// user (-1 for none) in them, so that names are joined in order by comparing numbers, not strings.
        var keysInOrder: [[UInt8]] = []
        var usersInOrder: [[UInt8]] = []
        var attrKeyPlace: [Int32] = []
        var attrUserPlace: [Int32] = []
        var teamBytes: [[UInt8]] = []
        var modelBytes: [Int32: [UInt8]] = [:]

        init(attributions: [Int64: Attribution], models: [Int64: String]) {
            var attrKey: [Int32: String] = [:]
            var attrUser: [Int32: String] = [:]
            var keyIndex: [String: Int32] = [:]
            var teamIndex: [String: Int32] = [:]
            // In id order, as the ledger lists them, so that names get their indexes in a stable order.
            for (id64, attribution) in attributions.sorted(by: { $0.key < $1.key }) {
                let id = Int(id64)
                let key = attribution.key
                let user = attribution.user
                let team = attribution.team
                let k =
                    keyIndex[key]
                    ?? {
                        keyIndex[key] = Int32(keyNames.count)
                        keyNames.append(key)
                        return Int32(keyNames.count - 1)
                    }()
                let t =
                    teamIndex[team]
                    ?? {
                        teamIndex[team] = Int32(teamNames.count)
                        teamNames.append(team)
                        return Int32(teamNames.count - 1)
                    }()
                if id >= owners.count { owners += Array(repeating: (-1, -1), count: id + 1 - owners.count) }
                owners[id] = (k, t)
                attrKey[Int32(id)] = key
                attrUser[Int32(id)] = user
            }
            for (id, value) in models { self.models[Int32(id)] = value }
            keyByteRank = Array(repeating: 0, count: keyNames.count)
            for (place, k) in keyNames.indices.sorted(by: { keyNames[$0].utf8.lexicographicallyPrecedes(keyNames[$1].utf8) }).enumerated() {
                keyByteRank[k] = Int32(place)
            }
            let keys = Array(Set(attrKey.values)).sorted()
            let users = Array(Set(attrUser.values.filter { !$0.isEmpty })).sorted()
            keysInOrder = keys.map { Array($0.utf8) }
            usersInOrder = users.map { Array($0.utf8) }
            let keyPlace = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, Int32($0)) })
            let userPlace = Dictionary(uniqueKeysWithValues: users.enumerated().map { ($1, Int32($0)) })
            attrKeyPlace = Array(repeating: -1, count: owners.count)
            attrUserPlace = Array(repeating: -1, count: owners.count)
            for (attr, key) in attrKey { attrKeyPlace[Int(attr)] = keyPlace[key] ?? -1 }
            for (attr, user) in attrUser { attrUserPlace[Int(attr)] = userPlace[user] ?? -1 }
            teamBytes = teamNames.map { Array($0.utf8) }
            modelBytes = self.models.mapValues { Array($0.utf8) }
        }

        func owner(_ attr: Int) -> (key: Int32, team: Int32) { attr >= 0 && attr < owners.count ? owners[attr] : (-1, -1) }

        /// Each cluster with its kind and its rank within the kind, in waste.csv's order (`docs/reports.md`): most costly
        /// first, then oldest, then by subject (the hash prefix, or the key's name, as bytes), then by hash. Stored in
        /// this order, a month's rows need no sort when a report reads them. The order is worked out on plain numbers.
        func forEachCluster(
            _ found: WasteDetector.Found, _ body: (WasteDetector.Cluster, WasteKind, _ rank: Int, _ index: Int) throws -> Void
        ) rethrows {
            let groups: [(WasteKind, [WasteDetector.Cluster])] = [
                (.exactDuplicate, found.exact), (.nearDuplicate, found.near), (.retryLoop, found.loops), (.runaway, found.runaways),
            ]
            for (kind, clusters) in groups {
                // The subject's order as a number: the hash's first 48 bits are its 12 hex digits; a key's place in
                // byte order is its name's.
                let byKey = kind == .retryLoop || kind == .runaway
                func subject(_ c: WasteDetector.Cluster) -> UInt64 {
                    guard byKey else { return UInt64(bitPattern: c.hash) >> 16 }
                    return c.key >= 0 && Int(c.key) < keyByteRank.count ? UInt64(keyByteRank[Int(c.key)]) : .max
                }
                // Sorted on plain numbers: comparing clusters themselves would copy (and retain) each one.
                var order = clusters.indices.map { i in
                    (cost: -clusters[i].cost, first: clusters[i].first, subject: subject(clusters[i]), hash: clusters[i].hash, index: i)
                }
                order.sort { ($0.cost, $0.first, $0.subject, $0.hash, $0.index) < ($1.cost, $1.first, $1.subject, $1.hash, $1.index) }
                for (rank, entry) in order.enumerated() { try body(clusters[entry.index], kind, rank, entry.index) }
            }
        }

        /// The `waste` row for a cluster: the same text `finding` gives, built from bytes kept per id.
        func row(
            _ c: WasteDetector.Cluster, _ kind: WasteKind, rules: WasteRules, currency: String,
            peak: (requests: Int, spend: Int128)?
        ) -> WasteRecord {
            var subject: [UInt8]
            var detail = ""
            switch kind {
            case .exactDuplicate, .nearDuplicate:
                subject = Self.hashPrefix(c.hash)
            default:  // retry loops and runaways name their key
                let finding = finding(c, kind, rules: rules, currency: currency, peak: peak)
                subject = Array(finding.subject.utf8)
                detail = finding.detail
            }
            return WasteRecord(
                kind: kind, subject: subject, model: c.model >= 0 ? modelBytes[c.model] ?? [] : [],
                team: c.team >= 0 ? teamBytes[Int(c.team)] : [], keys: joined(c, attrKeyPlace, keysInOrder),
                users: joined(c, attrUserPlace, usersInOrder),
                first: c.first, last: c.last, calls: c.calls, repeats: c.repeats, errors: c.errors, cost: c.cost,
                countsAsWaste: rules.countsAsWaste(kind), detail: detail)
        }

        /// The first 12 hex digits of a prompt hash.
        static func hashPrefix(_ hash: Int64) -> [UInt8] {
            let word = UInt64(bitPattern: hash)
            return (0..<12).map { hexDigits[Int((word >> UInt64(60 - 4 * $0)) & 0xF)] }
        }
        private static let hexDigits = Array("0123456789abcdef".utf8)

        /// The place (by `place`, from attribution id) of an attribution's name; -1 when it has none.
        private static func place(_ attr: Int32, _ place: [Int32]) -> Int32 { attr >= 0 && Int(attr) < place.count ? place[Int(attr)] : -1 }

        /// The distinct places of the cluster's names: sorted, so in name order.
        private func places(_ c: WasteDetector.Cluster, _ place: [Int32]) -> [Int32] {
            var places = c.attrs.map { Self.place($0, place) }.filter { $0 >= 0 }
            places.sort()
            var previous: Int32 = -1
            places.removeAll { at in
                defer { previous = at }
                return at == previous
            }
            return places
        }

        /// The cluster's distinct names in name order, joined with commas. One attribution, the common case, costs no
        /// array.
        private func joined(_ c: WasteDetector.Cluster, _ place: [Int32], _ names: [[UInt8]]) -> [UInt8] {
            if let only = c.onlyAttr {
                let at = Self.place(only, place)
                return at >= 0 ? names[Int(at)] : []
            }
            return Array(places(c, place).map { names[Int($0)] }.joined(separator: [UInt8(ascii: ",")]))
        }

        func finding(
            _ c: WasteDetector.Cluster, _ kind: WasteKind, rules: WasteRules, currency: String,
            peak: (requests: Int, spend: Int128)?
        ) -> WasteFinding {
            func list(_ place: [Int32], _ names: [[UInt8]]) -> [String] {
                places(c, place).map { String(decoding: names[Int($0)], as: UTF8.self) }
            }
            let hashText = String(decoding: Self.hashPrefix(c.hash), as: UTF8.self)
            let subject: String
            let detail: String
            switch kind {
            case .exactDuplicate, .nearDuplicate: (subject, detail) = (hashText, "")
            case .retryLoop:
                (subject, detail) = (keyNames[Int(c.key)], "\(c.calls) identical prompts (\(hashText)), \(c.errors) failed")
            default:  // runaways
                (subject, detail) = (
                    keyNames[Int(c.key)],
                    "peak \(peak?.requests ?? 0) requests/min, \(Money(picos: peak?.spend ?? 0).brief) \(currency) in an hour"
                )
            }
            return WasteFinding(
                kind: kind, subject: subject, model: c.model >= 0 ? models[c.model] ?? "" : "",
                team: c.team >= 0 ? teamNames[Int(c.team)] : "", keys: list(attrKeyPlace, keysInOrder),
                users: list(attrUserPlace, usersInOrder),
                firstSeen: c.first, lastSeen: c.last, calls: Int64(c.calls), repeats: Int64(c.repeats),
                errors: Int64(c.errors), cost: Money(picos: Int128(c.cost)), countsAsWaste: rules.countsAsWaste(kind),
                detail: detail)
        }
    }
}
