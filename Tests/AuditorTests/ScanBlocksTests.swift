import Foundation
import GRDB
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// The packed copies of calls that the waste scan reads (`scan_blocks`): every field back as written, in the scan's
/// order across overlapping blocks, and damage reported rather than read as calls.
@Suite("Scan blocks")
struct ScanBlocksTests {
    /// A ledger in a temp folder of its own.
    struct Scratch {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tally-blocks-\(UUID().uuidString)").path
        var path: String { root + "/tally.sqlite" }
        func ledger() throws -> Ledger { try Ledger(path: path) }
        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    /// Deterministic calls around `start`, with the awkward values a field can hold.
    static func calls(count: Int, start: Int64, spread: Int64, seed: UInt64) -> [ScanCall] {
        var state = seed
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state ^ (state >> 29)
        }
        return (0..<count).map { i in
            let r = next()
            let flags =
                (r & 1 == 0 ? ScanCall.ok : ScanCall.failed) | (r & 2 == 0 ? ScanCall.hasHash : 0) | (r & 4 == 0 ? ScanCall.hasSim : 0)
                | (r & 8 == 0 ? ScanCall.priced : 0)
            return ScanCall(
                ts: start + Int64(next() % UInt64(spread)),
                hash: flags & ScanCall.hasHash != 0 ? Int64(bitPattern: next()) : 0,
                sim: flags & ScanCall.hasSim != 0 ? next() : 0,
                cost: i % 97 == 0 ? -Int64(next() % 1_000) : (i % 89 == 0 ? .max : Int64(next() % 5_000_000_000)),
                attr: i % 101 == 0 ? .max : Int32(next() % 40), model: i % 103 == 0 ? -1 : Int32(next() % 7), flags: flags)
        }
    }

    static func text(_ calls: [ScanCall]) -> [String] {
        calls.map { "\($0.ts) \($0.hash) \($0.sim) \($0.cost) \($0.attr) \($0.model) \($0.flags)" }
    }

    static func read(_ ledger: Ledger, from: Int64, to: Int64) throws -> [ScanCall] {
        try ledger.access { db in
            var calls: [ScanCall] = []
            try ScanBlocks.forEach(db, from: from, to: to) { calls.append($0) }
            return calls
        }
    }

    static func write(_ ledger: Ledger, _ groups: [[ScanCall]]) throws {
        try ledger.access { db in
            try db.inTransaction {
                for group in groups {
                    var calls = group
                    try ScanBlocks.write(&calls, db)
                }
                return .commit
            }
        }
    }

    @Test func overlappingBlocksReadBackAsOneStreamInTheScansOrder() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let ledger = try scratch.ledger()
        let day: Int64 = 86_400_000
        let start = Timestamp.parse("2026-11-01T00:00:00Z")!
        // Three segments' worth: two overlapping in time (two collectors), one later; 20,000 calls make several
        // blocks each. Some share a millisecond, so the order of ties shows.
        var groups = [
            Self.calls(count: 20_000, start: start, spread: 3 * day, seed: 1),
            Self.calls(count: 9_000, start: start + day, spread: 3 * day, seed: 2),
            Self.calls(count: 500, start: start + 5 * day, spread: 1_000, seed: 3),
        ]
        groups[1] += groups[1].prefix(50).map {
            var copy = $0
            copy.cost += 1
            return copy
        }
        try Self.write(ledger, groups)

        let all = groups.flatMap { $0 }.sorted(by: ScanCall.precedes)
        let read = try Self.read(ledger, from: .min, to: .max)
        #expect(read.count == all.count)
        #expect(Self.text(read) == Self.text(all))

        // A range reads what falls in it, both ends included.
        let (from, to) = (all[7_000].ts, all[21_000].ts)
        #expect(Self.text(try Self.read(ledger, from: from, to: to)) == Self.text(all.filter { $0.ts >= from && $0.ts <= to }))
        #expect(try Self.read(ledger, from: start + 10 * day, to: .max).isEmpty)

        // Written in another order, the same calls read back the same: the scan never depends on ingest order.
        let other = Scratch()
        defer { other.remove() }
        let reversed = try other.ledger()
        try Self.write(reversed, groups.reversed().map { Array($0.reversed()) })
        #expect(Self.text(try Self.read(reversed, from: .min, to: .max)) == Self.text(all))

        let blocks: [Int] = try ledger.access { db in try Int.fetchAll(db, sql: "SELECT calls FROM scan_blocks ORDER BY id") }
        #expect(blocks.allSatisfy { $0 <= ScanBlocks.callsPerBlock } && blocks.reduce(0, +) == all.count)
    }

    @Test func aDamagedBlockIsAnErrorThatNamesIt() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let ledger = try scratch.ledger()
        try Self.write(ledger, [Self.calls(count: 300, start: 1_000_000, spread: 10_000, seed: 4)])
        let id: Int64 = try ledger.access { db in try Int64.fetchOne(db, sql: "SELECT id FROM scan_blocks")! }

        try ledger.access { db in try db.execute(sql: "UPDATE scan_blocks SET data = substr(data, 1, 100)") }
        let cut = #expect(throws: AuditError.self) { _ = try Self.read(ledger, from: .min, to: .max) }
        #expect(cut?.code == .io && cut?.message.contains("scan_blocks row \(id)") == true)

        try ledger.access { db in try db.execute(sql: "UPDATE scan_blocks SET format = 9") }
        let future = #expect(throws: AuditError.self) { _ = try Self.read(ledger, from: .min, to: .max) }
        #expect(future?.message.contains("format 9") == true)
    }
}
