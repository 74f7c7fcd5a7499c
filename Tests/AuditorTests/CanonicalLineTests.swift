import Foundation
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// The ingest's fast path must accept only what the full reader accepts, with the same values.
@Suite("Canonical fast path against the full reader")
struct CanonicalLineTests {
    /// A parsed event with its strings resolved, so two string tables compare.
    struct Resolved: Equatable {
        var id: String
        var row: [Int64?]
        var strings: [String?]
    }

    enum Outcome: Equatable {
        case event(Resolved)
        case quarantined(String)
    }

    func parse(_ bytes: [UInt8], fastPath: Bool) -> Outcome {
        var segment = ParsedSegment(
            job: SegmentJob(
                file: SegmentFile(
                    path: "/x/c1/20261110T000000Z-000001.jsonl.gz", collector: "c1",
                    name: "20261110T000000Z-000001.jsonl.gz")!,
                relativePath: "c1/x", size: 0, mtime: 0, offset: 0, firstLine: 1))
        bytes.withUnsafeBufferPointer { segment.accept(number: 7, line: $0, fastPath: fastPath) }
        if let q = segment.quarantined.first { return .quarantined(q.kind) }
        let e = segment.events[0]
        func s(_ i: Int32) -> String? { i >= 0 ? segment.strings[i] : nil }
        return .event(
            Resolved(
                id: e.idText >= 0 ? segment.strings[e.idText] : String(e.idHigh, radix: 16) + "-" + String(e.idLow, radix: 16),
                row: [
                    e.timestamp, Int64(e.line), Int64(e.endpoint), Int64(e.outcome), e.stream ? 1 : 0, e.hasUsage ? 1 : 0, Int64(e.status),
                    e.tokens.input, e.tokens.output, e.tokens.cachedInput, e.tokens.cacheWrite, e.tokens.reasoning, e.latencyMs, e.ttftMs,
                    e.promptHash, e.promptSim, e.promptChars, e.tokens.cacheWrite1h, e.tokens.webSearchRequests, e.usageEstimated ? 1 : 0,
                ],
                strings: [s(e.collector), s(e.key), s(e.provider), s(e.model), s(e.endUser), s(e.tags), s(e.error), s(e.serviceTier)]))
    }

    static func sample() -> UsageEvent {
        UsageEvent(
            id: "0192f1c2-7d3e-7a00-8000-000000000001", timestamp: Timestamp.parse("2026-11-22T15:43:01.123Z")!, collector: "c1",
            key: "k-alice-dev", provider: "openai", endpoint: .chatCompletions, model: "gpt-4o-mini", status: 200, outcome: .ok,
            stream: true, usage: .init(input: 1200, output: 300, cachedInput: 1000, cacheWrite: 0, reasoning: 100),
            latencyMs: 812, ttftMs: 95, promptHash: String(repeating: "ab", count: 32), promptSim: 0x0123_4567_89ab_cdef,
            promptChars: 4711, preview: nil, user: "end-user-7", tags: ["team": "search", "env": "prod"], error: nil)
    }

    static let lines: [String] = {
        var e = sample()
        var lines = [e.jsonLine]
        // The fields added later in v1: a served tier, one-hour cache writes, web searches, an estimate.
        e.usage = .init(input: 1200, output: 300, cachedInput: 100, cacheWrite: 900, reasoning: 0, cacheWrite1h: 600, webSearchRequests: 3)
        e.serviceTier = "priority"
        e.usageEstimated = true
        lines.append(e.jsonLine)
        e.serviceTier = nil
        e.usage = nil
        e.tags = [:]
        e.promptSim = nil
        e.promptHash = nil
        e.user = nil
        e.latencyMs = nil
        lines.append(e.jsonLine)
        e.id = "not-a-uuid"
        e.error = "upstream said no"
        e.outcome = .upstreamError
        e.status = 502
        e.stream = false
        e.tags = ["only": "one"]
        e.preview = "short preview"
        lines.append(e.jsonLine)
        e.id = "0192F1C2-7D3E-7A00-8000-00000000000A"
        e.promptHash = "not hex at all"
        e.tags = ["b": "2", "a": "1", "c": "=cmd"]
        lines.append(e.jsonLine)
        e.preview = "quote \" and newline \n"
        e.user = "é"
        lines.append(e.jsonLine)
        e = sample()
        e.usage = .init(input: 10, output: 5, cachedInput: 8, cacheWrite: 5, reasoning: 0)  // cached + write > input
        lines.append(e.jsonLine)
        e = sample()
        e.usage = .init(input: 10, output: 5, cachedInput: 0, cacheWrite: 5, reasoning: 0, cacheWrite1h: 6)  // 1h > write
        lines.append(e.jsonLine)
        e = sample()
        e.usage = .init(input: 20_000_000_000, output: 0)  // implausible
        lines.append(e.jsonLine)
        e = sample()
        e.endpoint = .messages
        e.outcome = .rejectedRevoked
        e.usage = nil
        lines.append(e.jsonLine)
        return lines.map { String($0.dropLast()) }
    }()

    @Test func takesTheWritersOwnLinesAndAgrees() {
        // The writer's lines without escapes take the fast path.
        for line in Self.lines.prefix(5) {
            var strings = StringTable()
            #expect(Array(line.utf8).withUnsafeBufferPointer { CanonicalLine.read($0, number: 1, strings: &strings) } != nil, "\(line)")
        }
        for line in Self.lines {
            let bytes = Array(line.utf8)
            #expect(parse(bytes, fastPath: true) == parse(bytes, fastPath: false), "\(line)")
        }
    }

    @Test func agreesOnEveryCutAndOnRandomMutations() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]",:\0123456789.eE+-tfnuaA "#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xFF]
        var disagreements = 0
        var fastTaken = 0
        for line in Self.lines {
            let base = Array(line.utf8)
            for cut in 0...base.count where parse(Array(base[..<cut]), fastPath: true) != parse(Array(base[..<cut]), fastPath: false) {
                disagreements += 1
            }
            for _ in 0..<3000 {
                var bytes = base
                for _ in 0..<Int.random(in: 1...2, using: &generator) {
                    let i = Int.random(in: 0..<bytes.count, using: &generator)
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: bytes[i] = alphabet.randomElement(using: &generator)!
                    case 1: bytes.remove(at: i)
                    default: bytes.insert(alphabet.randomElement(using: &generator)!, at: i)
                    }
                }
                var strings = StringTable()
                if bytes.withUnsafeBufferPointer({ CanonicalLine.read($0, number: 7, strings: &strings) }) != nil { fastTaken += 1 }
                let (fast, full) = (parse(bytes, fastPath: true), parse(bytes, fastPath: false))
                if fast != full {
                    disagreements += 1
                    Issue.record("fast \(fast) vs full \(full) on \(String(decoding: bytes, as: UTF8.self))")
                    if disagreements > 5 { return }
                }
            }
        }
        #expect(disagreements == 0)
        // The mutations must exercise the fast path, not only the fallback.
        #expect(fastTaken > 1000)
    }
}
