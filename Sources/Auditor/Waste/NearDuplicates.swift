import CMemory

#if canImport(Glibc)
import Glibc
import TallyLedger
#endif

/// Finds near duplicates: calls whose SimHash is within `rules.nearDistance` bits of an earlier call's in the window,
/// with another prompt, the same model and team. Calls are bucketed by SimHash bands, so a call is compared with the
/// few recent calls that share a band, never with all of them. It is fed, in time order, the calls `WasteDetector`
/// hands on (not exact repeats), and runs on a thread of its own.
struct NearDuplicates {
    typealias Cluster = WasteDetector.Cluster
    let rules: WasteRules
    /// Calls before this only open windows; findings count calls from here on.
    let periodStart: Int64
    private(set) var near: [Cluster] = []

    // SimHash bands; each bucket holds the most recent calls whose band had that value.
    /// What a bucket scan reads (16 bytes, so a bucket of 8 is two cache lines), and the rest, read only for a match.
    private struct NearEntry {
        var ts: Int64
        var sim: UInt64
        var hash: Int64
        var model: Int32
        var team: Int32
        var attr: Int32
    }
    private let bandShifts: [UInt64]
    private let bandBits: UInt64
    /// The calls inside the window, numbered in time order from `live` up to `next`: call `n` is in slot
    /// `n & (recent.count - 1)` of a ring that doubles when the window holds more calls than it has slots (a ring, so
    /// calls leaving the window cost neither a copy nor room kept for them).
    private var recent = Array(repeating: NearEntry(ts: .min, sim: 0, hash: 0, model: -1, team: -1, attr: -1), count: 1 << 16)
    private var live: UInt32 = 1
    private var next: UInt32 = 1
    /// Buckets of 8 slots, one 64-byte cache line each: a slot holds a call number (high 32 bits) and 32 other bits
    /// of its SimHash (low 32), enough to rule out nearly every candidate without touching `recent`.
    private var nearClusters = UInt64Table(capacity: 1 << 12, placeholder: Int32(-1))
    private let storage: BucketStorage
    private var buckets: UnsafeMutablePointer<UInt64> { storage.slots }

    /// Owns the buckets' cache-line-aligned memory. The detector is used by one thread at a time.
    private final class BucketStorage {
        let slots: UnsafeMutablePointer<UInt64>
        init(count: Int) {
            // 2 MiB aligned and advised as huge pages where the kernel allows: the buckets are read at random, and with
            // 4 KiB pages nearly every read would also miss the TLB.
            let bytes = (count * 8 + (2 << 20) - 1) / (2 << 20) * (2 << 20)
            let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 2 << 20)
            #if os(Linux)
            _ = madvise(raw, bytes, MADV_HUGEPAGE)
            #endif
            slots = raw.bindMemory(to: UInt64.self, capacity: count)
            slots.initialize(repeating: 0, count: count)
        }
        deinit { slots.deallocate() }
    }
    private static let bucketSize = 8

    init(rules: WasteRules, periodStart: Int64) {
        self.rules = rules
        self.periodStart = periodStart
        // `d + 1` bands: two SimHashes within d bits agree on at least one whole band. Each band indexes buckets by at
        // most 16 of its bits, which keeps the table small; agreeing bands agree on those bits too.
        let bands = rules.nearDistance + 1
        let width = 64 / bands
        bandShifts = (0..<bands).map { UInt64($0 * width) }
        bandBits = UInt64(min(width, 16))
        let slots = bands << min(width, 16)
        storage = BucketStorage(count: slots * Self.bucketSize)
    }

    /// Adds calls with a prompt hash and a SimHash, in time order; the buckets they will read are requested a few
    /// calls ahead.
    mutating func add(_ calls: [WasteCall]) {
        let ahead = 6
        let mask: UInt64 = (1 << bandBits) - 1
        calls.withUnsafeBufferPointer { calls in
            for i in calls.indices {
                if i + ahead < calls.count, let sim = calls[i + ahead].sim {
                    for band in bandShifts.indices {
                        tally_prefetch(buckets + (band << Int(bandBits) | Int((sim >> bandShifts[band]) & mask)) * Self.bucketSize)
                    }
                }
                if let hash = calls[i].hash, let sim = calls[i].sim {
                    add(calls[i], hash: hash, sim: sim, counts: calls[i].ts >= periodStart)
                }
            }
        }
    }

    private mutating func add(_ call: WasteCall, hash: Int64, sim: UInt64, counts: Bool) {
        let horizon = call.ts - rules.duplicateWindow
        let mask: UInt64 = (1 << bandBits) - 1
        let size = Self.bucketSize
        // Calls that left the window leave `recent`; their call numbers then fail the `>= firstLive` test below.
        var ring = recent.count - 1
        while live != next, recent[Int(live) & ring].ts < horizon { live &+= 1 }
        if Int(next &- live) == recent.count {
            growRecent()
            ring = recent.count - 1
        }
        let firstLive = UInt64(live)
        let number = UInt64(next)
        var match: NearEntry?
        let distance = rules.nearDistance
        for band in bandShifts.indices {
            let shift = bandShifts[band]
            let bucket = buckets + (band << Int(bandBits) | Int((sim >> shift) & mask)) * size
            // 32 bits from outside this band: differing there by more than the distance rules a candidate out.
            let fragment = UInt32(truncatingIfNeeded: (sim >> ((shift + bandBits) & 63)) | (sim << ((64 - shift - bandBits) & 63)))
            var oldest = 0
            for i in 0..<size {
                let slot = bucket[i]
                if slot < bucket[oldest] { oldest = i }
                guard slot >> 32 >= firstLive, (UInt32(truncatingIfNeeded: slot) ^ fragment).nonzeroBitCount <= distance else { continue }
                let entry = recent[Int(slot >> 32) & ring]
                guard (entry.sim ^ sim).nonzeroBitCount <= distance, entry.hash != hash, entry.model == call.model,
                    entry.team == call.team, entry.ts > match?.ts ?? .min
                else { continue }
                match = entry
            }
            bucket[oldest] = number << 32 | UInt64(fragment)
        }
        recent[Int(next) & ring] = NearEntry(ts: call.ts, sim: sim, hash: hash, model: call.model, team: call.team, attr: call.attr)
        next &+= 1
        guard let match, counts else { return }
        let earlier = WasteDetector.promptKey(match.hash, call.model, call.team)
        let this = WasteDetector.promptKey(hash, call.model, call.team)
        var index = nearClusters.find(earlier).map { nearClusters[$0] } ?? nearClusters.find(this).map { nearClusters[$0] } ?? -1
        if index < 0 {
            index = Int32(near.count)
            var cluster = Cluster(first: match.ts, last: match.ts, team: call.team, model: call.model, hash: match.hash)
            cluster.calls = 1
            cluster.add(attr: match.attr)
            near.append(cluster)
        }
        nearClusters[nearClusters.findOrInsert(earlier, index)] = index
        nearClusters[nearClusters.findOrInsert(this, index)] = index
        near[Int(index)].addRepeat(call)
    }

    /// Twice the slots, each live call moved to its slot in the bigger ring.
    private mutating func growRecent() {
        var grown = Array(repeating: recent[0], count: recent.count * 2)
        let (from, to) = (recent.count - 1, grown.count - 1)
        var n = live
        while n != next {
            grown[Int(n) & to] = recent[Int(n) & from]
            n &+= 1
        }
        recent = grown
    }
}
