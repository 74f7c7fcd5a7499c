import Foundation
import GRDB
import GRDBSQLite

/// One call as the waste scan reads it: what the rules need of an `events` row, in ledger ids.
package struct ScanCall {
    package var ts: Int64
    package var hash: Int64
    package var sim: UInt64
    package var cost: Int64
    package var attr: Int32
    package var model: Int32
    package var flags: UInt8

    package static let ok: UInt8 = 1
    package static let failed: UInt8 = 2
    package static let hasHash: UInt8 = 4
    package static let hasSim: UInt8 = 8
    /// The call has a price (`events.cost` is not NULL); `cost` is 0 otherwise.
    package static let priced: UInt8 = 16

    /// The scan's order: time, then the call's own fields. Two calls equal in all of them are the same to the rules,
    /// so the order of what the rules see never depends on which segment was ingested first.
    @inline(__always) package static func precedes(_ a: ScanCall, _ b: ScanCall) -> Bool {
        if a.ts != b.ts { return a.ts < b.ts }
        return (a.hash, a.sim, a.attr, a.model, a.cost, a.flags) < (b.hash, b.sim, b.attr, b.model, b.cost, b.flags)
    }
}

extension ScanCall {
    /// A call that reached a provider; nil for one the collector refused (no cost, no waste).
    package init?(ts: Int64, attr: Int64, model: Int64, outcome: Int, cost: Int64?, hash: Int64?, sim: Int64?) {
        let outcome = StoredEnums.outcomeClass(outcome)
        guard outcome != .rejected else { return nil }
        self.ts = ts
        self.attr = Int32(truncatingIfNeeded: attr)
        self.model = Int32(truncatingIfNeeded: model)
        self.cost = cost ?? 0
        self.hash = hash ?? 0
        self.sim = UInt64(bitPattern: sim ?? 0)
        flags =
            (outcome == .ok ? Self.ok : Self.failed) | (hash == nil ? 0 : Self.hasHash) | (sim == nil ? 0 : Self.hasSim)
            | (cost == nil ? 0 : Self.priced)
    }
}

/// The ledger's `scan_blocks`: the calls the waste scan reads, packed. Each block holds up to `callsPerBlock` calls
/// of one ingested segment (or of the backfill), sorted in the scan's order, about 30 bytes a call. The ingest writes
/// them in the same transaction as the calls' `events` rows, so they never disagree. Reading a month's calls from
/// here instead of stepping through millions of `events` rows is what keeps the audit's waste scan fast
/// (`docs/ledger.md`).
///
/// A call is a little-endian record: the time since the previous call (the block's `first_ts` for the first) as a
/// varint, a flags byte (1 ok, 2 failed, 4 has a prompt hash, 8 has a SimHash, 16 priced), `attr`, `model` and `cost` as zigzag
/// varints, then the prompt hash and the SimHash as 8 bytes each when present.
enum ScanBlocks {
    package static let callsPerBlock = 8192
    /// The record layout above; a block of another format is an error, not a guess.
    package static let format = 1

    /// SQLite's last error on `db`, naming the table.
    private static func failure(_ db: Database) -> DatabaseError {
        DatabaseError(message: "scan_blocks: \(String(cString: sqlite3_errmsg(db.sqliteConnection)))")
    }

    // MARK: Writing

    /// Sorts `calls` and adds them to the ledger as blocks.
    static func write(_ calls: inout [ScanCall], _ db: Database) throws {
        guard !calls.isEmpty else { return }
        calls.sort(by: ScanCall.precedes)
        let insert = try db.cachedStatement(sql: "INSERT INTO scan_blocks (format, first_ts, last_ts, calls, data) VALUES (?, ?, ?, ?, ?)")
            .sqliteStatement
        var data: [UInt8] = []
        var start = 0
        while start < calls.count {
            let end = min(start + callsPerBlock, calls.count)
            encode(calls[start..<end], into: &data)
            sqlite3_reset(insert)
            sqlite3_bind_int64(insert, 1, Int64(format))
            sqlite3_bind_int64(insert, 2, calls[start].ts)
            sqlite3_bind_int64(insert, 3, calls[end - 1].ts)
            sqlite3_bind_int64(insert, 4, Int64(end - start))
            let rc = data.withUnsafeBytes { sqlite3_bind_blob(insert, 5, $0.baseAddress, Int32($0.count), nil) }
            guard rc == SQLITE_OK, sqlite3_step(insert) == SQLITE_DONE else {
                let error = failure(db)
                sqlite3_reset(insert)
                throw error
            }
            sqlite3_reset(insert)
            start = end
        }
        sqlite3_clear_bindings(insert)
    }

    /// Encodes sorted calls as one block's `data`.
    package static func encode(_ calls: ArraySlice<ScanCall>, into data: inout [UInt8]) {
        data.removeAll(keepingCapacity: true)
        data.reserveCapacity(calls.count * 34)
        var previous = calls.first?.ts ?? 0
        for call in calls {
            varint(UInt64(call.ts - previous), into: &data)
            previous = call.ts
            data.append(call.flags)
            varint(zigzag(Int64(call.attr)), into: &data)
            varint(zigzag(Int64(call.model)), into: &data)
            varint(zigzag(call.cost), into: &data)
            if call.flags & ScanCall.hasHash != 0 { fixed(UInt64(bitPattern: call.hash), into: &data) }
            if call.flags & ScanCall.hasSim != 0 { fixed(call.sim, into: &data) }
        }
    }

    @inline(__always) private static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }
    @inline(__always) private static func unzigzag(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }

    @inline(__always) private static func varint(_ value: UInt64, into data: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            data.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        data.append(UInt8(value))
    }

    @inline(__always) private static func fixed(_ value: UInt64, into data: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    // MARK: Reading

    /// Reads one block's calls in order.
    package struct Decoder {
        private let id: Int64
        private let data: [UInt8]
        private var offset = 0
        private var previous: Int64
        private var remaining: Int

        package init(id: Int64, data: [UInt8], firstTs: Int64, calls: Int) {
            self.id = id
            self.data = data
            previous = firstTs
            remaining = calls
        }

        /// The next call; nil after the last. A block whose data ends before its call count (a damaged one) is an
        /// error that names its row.
        package mutating func next() throws -> ScanCall? {
            guard remaining > 0 else { return nil }
            let call = data.withUnsafeBufferPointer { bytes -> ScanCall? in
                var at = offset
                func varint() -> UInt64? {
                    var value: UInt64 = 0
                    var shift: UInt64 = 0
                    while at < bytes.count, shift < 64 {
                        let byte = bytes[at]
                        at += 1
                        value |= UInt64(byte & 0x7F) << shift
                        if byte < 0x80 { return value }
                        shift += 7
                    }
                    return nil
                }
                func fixed() -> UInt64? {
                    guard at + 8 <= bytes.count else { return nil }
                    defer { at += 8 }
                    return UInt64(littleEndian: UnsafeRawPointer(bytes.baseAddress! + at).loadUnaligned(as: UInt64.self))
                }
                guard let delta = varint(), at < bytes.count else { return nil }
                let flags = bytes[at]
                at += 1
                guard let attr = varint(), let model = varint(), let cost = varint() else { return nil }
                var hash: UInt64 = 0
                var sim: UInt64 = 0
                if flags & ScanCall.hasHash != 0 {
                    guard let value = fixed() else { return nil }
                    hash = value
                }
                if flags & ScanCall.hasSim != 0 {
                    guard let value = fixed() else { return nil }
                    sim = value
                }
                offset = at
                remaining -= 1
                previous &+= Int64(bitPattern: delta)
                return ScanCall(
                    ts: previous, hash: Int64(bitPattern: hash), sim: sim, cost: unzigzag(cost),
                    attr: Int32(truncatingIfNeeded: unzigzag(attr)), model: Int32(truncatingIfNeeded: unzigzag(model)), flags: flags)
            }
            guard let call else { throw DatabaseError(message: "scan_blocks row \(id) is shorter than its call count") }
            return call
        }
    }

    /// Hands `body` every call with a time from `from` to `to` (both included), in the scan's order: the blocks that
    /// reach into the range are merged, each opened when the merge reaches its first call and let go after its last,
    /// so memory holds the blocks that overlap in time, not the range.
    static func forEach(_ db: Database, from: Int64, to: Int64, _ body: (ScanCall) throws -> Void) throws {
        struct Block {
            var id: Int64
            var first: Int64
            var calls: Int
            var format: Int
        }
        var blocks: [Block] = []
        let list = try db.cachedStatement(
            sql: """
                SELECT id, first_ts, calls, format FROM scan_blocks WHERE last_ts >= ? AND first_ts <= ? ORDER BY first_ts, id
                """
        ).sqliteStatement
        sqlite3_reset(list)
        sqlite3_bind_int64(list, 1, from)
        sqlite3_bind_int64(list, 2, to)
        while true {
            let rc = sqlite3_step(list)
            guard rc == SQLITE_ROW else {
                guard rc == SQLITE_DONE else { throw failure(db) }
                break
            }
            blocks.append(
                Block(
                    id: sqlite3_column_int64(list, 0), first: sqlite3_column_int64(list, 1),
                    calls: Int(sqlite3_column_int64(list, 2)), format: Int(sqlite3_column_int64(list, 3))))
        }
        sqlite3_reset(list)

        let load = try db.cachedStatement(sql: "SELECT data FROM scan_blocks WHERE id = ?").sqliteStatement
        defer { sqlite3_reset(load) }
        func open(_ block: Block) throws -> Decoder {
            guard block.format == format else {
                throw DatabaseError(message: "scan_blocks row \(block.id) has format \(block.format), which this Tally does not read")
            }
            sqlite3_reset(load)
            sqlite3_bind_int64(load, 1, block.id)
            guard sqlite3_step(load) == SQLITE_ROW else { throw failure(db) }
            let count = Int(sqlite3_column_bytes(load, 0))
            let data = count == 0 ? [] : Array(UnsafeRawBufferPointer(start: sqlite3_column_blob(load, 0), count: count))
            sqlite3_reset(load)
            return Decoder(id: block.id, data: data, firstTs: block.first, calls: block.calls)
        }

        // A min-heap of open blocks by their next call.
        var heap: [(call: ScanCall, decoder: Decoder)] = []
        func below(_ i: Int, _ j: Int) -> Bool { ScanCall.precedes(heap[i].call, heap[j].call) }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let left = 2 * i + 1
                let right = left + 1
                var smallest = i
                if left < heap.count, below(left, smallest) { smallest = left }
                if right < heap.count, below(right, smallest) { smallest = right }
                guard smallest != i else { return }
                heap.swapAt(i, smallest)
                i = smallest
            }
        }
        func push(_ decoder: Decoder) throws {
            var decoder = decoder
            guard let call = try decoder.next() else { return }
            heap.append((call, decoder))
            var i = heap.count - 1
            while i > 0, below(i, (i - 1) / 2) {
                heap.swapAt(i, (i - 1) / 2)
                i = (i - 1) / 2
            }
        }

        var next = 0
        while true {
            // Open every block that starts before the earliest call still waiting.
            while next < blocks.count, heap.isEmpty || blocks[next].first <= heap[0].call.ts {
                try push(try open(blocks[next]))
                next += 1
            }
            guard !heap.isEmpty else { return }
            let call = heap[0].call
            if call.ts > to { return }
            if call.ts >= from { try body(call) }
            if let following = try heap[0].decoder.next() {
                heap[0].call = following
                siftDown(0)
            } else {
                heap.swapAt(0, heap.count - 1)
                heap.removeLast()
                siftDown(0)
            }
        }
    }

    // MARK: Ledgers from before the blocks

    /// Writes the blocks of every call already in `events` (a ledger from before `scan_blocks`): the calls whose id
    /// gives their time in key order (time order give or take `EventOrder.slack`, so neighbouring blocks overlap by
    /// that much at most), and the rest, listed in `events_unordered`, in time order.
    static func backfill(_ db: Database) throws {
        var calls: [ScanCall] = []
        calls.reserveCapacity(callsPerBlock)
        func flush() throws {
            try write(&calls, db)
            calls.removeAll(keepingCapacity: true)
        }
        for sql in [
            "SELECT e.ts, e.attr, e.model, e.outcome, e.cost, e.prompt_hash, e.prompt_sim FROM events_unordered u JOIN events e ON e.id = u.id ORDER BY u.ts, u.id",
            "SELECT ts, attr, model, outcome, cost, prompt_hash, prompt_sim, id FROM events",
        ] {
            let statement = try db.cachedStatement(sql: sql).sqliteStatement
            sqlite3_reset(statement)
            defer { sqlite3_reset(statement) }
            let hasID = sqlite3_column_count(statement) > 7
            while true {
                let rc = sqlite3_step(statement)
                guard rc == SQLITE_ROW else {
                    guard rc == SQLITE_DONE else { throw failure(db) }
                    break
                }
                let ts = sqlite3_column_int64(statement, 0)
                if hasID {
                    // Calls listed in `events_unordered` came in the first pass.
                    guard sqlite3_column_type(statement, 7) == SQLITE_BLOB, sqlite3_column_bytes(statement, 7) == 16,
                        let bytes = sqlite3_column_blob(statement, 7),
                        EventOrder.inOrder(idHigh: UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self)), ts: ts)
                    else { continue }
                }
                func optional(_ column: Int32) -> Int64? {
                    sqlite3_column_type(statement, column) == SQLITE_NULL ? nil : sqlite3_column_int64(statement, column)
                }
                guard
                    let call = ScanCall(
                        ts: ts, attr: sqlite3_column_int64(statement, 1), model: sqlite3_column_int64(statement, 2),
                        outcome: Int(sqlite3_column_int64(statement, 3)), cost: optional(4),
                        hash: optional(5), sim: optional(6))
                else { continue }
                calls.append(call)
                if calls.count == callsPerBlock { try flush() }
            }
            try flush()
        }
    }
}
