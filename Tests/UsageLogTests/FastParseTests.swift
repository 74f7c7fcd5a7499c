import Foundation
import TallyCore
import Testing

@testable import UsageLog

/// The ingest's fast reader must accept and refuse exactly what the generic reader does.
@Suite("Fast line reader against the generic one")
struct FastParseTests {
    enum Outcome: Equatable {
        case event(UsageEvent)
        case error(LineError.Kind)
    }

    func generic(_ bytes: [UInt8]) -> Outcome {
        do { return .event(try bytes.withUnsafeBufferPointer { try UsageEvent(jsonLine: $0) }) } catch let error as LineError {
            return .error(error.kind)
        } catch { return .error(.notJSON) }
    }

    func fast(_ bytes: [UInt8]) -> Outcome {
        do { return .event(try bytes.withUnsafeBufferPointer { try UsageEvent(fastLine: $0) }) } catch let error as LineError {
            return .error(error.kind)
        } catch { return .error(.notJSON) }
    }

    static let lines: [String] = {
        var base = UsageEventTests.sample()
        var lines = [base.jsonLine]
        base.usage = nil
        base.tags = [:]
        base.promptSim = nil
        lines.append(base.jsonLine)
        base.preview = "quote \" backslash \\ newline \n é 🧾 \u{1}"
        base.tags = ["z": "1", "a": "=cmd|' /C calc'!A0"]
        lines.append(base.jsonLine)
        lines += [
            #"{"v":1,"id":"x","ts":"2026-11-22T15:43:01Z","collector":"c","key":"k","provider":"p","endpoint":"other","model":"m","status":200,"outcome":"ok"}"#,
            #" { "v" : 1 , "extra" : {"deep":[1,2,{"a":null}]}, "id":"x","ts":"2026-11-22T16:43:01+01:00","collector":"c","key":"k","provider":"p","endpoint":"messages","model":"m","status":200,"outcome":"ok","stream":null,"usage":{"input":5,"output":1},"tags":null } "#,
            #"{"v":1,"id":"x","id":"y","ts":"2026-11-22T15:43:01Z","collector":"c","key":"k","provider":"p","endpoint":"other","model":"m","status":200,"outcome":"ok","usage":{"input":1},"usage":{"input":2}}"#,
            #"{"v":2,"id":"x"}"#, #"{"v":"1"}"#, #"{"v":1}"#, #"[]"#, #""text""#, "", "{", #"{"v":1,}"#, #"{"v":1} {}"#,
            #"{"v":1,"id":"x","ts":"2026-11-22T15:43:01Z","collector":"c","key":"k","provider":"p","endpoint":"other","model":"m","status":200,"outcome":"ok","stream":"yes"}"#,
            #"{"v":1,"id":"x","ts":"2026-11-22T15:43:01Z","collector":"c","key":"k","provider":"p","endpoint":"other","model":"m","status":200,"outcome":"ok","usage":{"input":-1}}"#,
            #"{"v":1,"id":"x","ts":"2026-11-22T15:43:01Z","collector":"c","key":"k","provider":"p","endpoint":"other","model":"m","status":200,"outcome":"ok","usage":{"input":1.5}}"#,
            #"{"v":1,"id":"x","ts":"2026-11-22T15:43:01Z","collector":"c","key":"k","provider":"p","endpoint":"other","model":"m","status":200,"outcome":"ok","usage":"lots"}"#,
            #"{"v":1,"id":"x","ts":"2026-11-22T15:43:01Z","collector":"c","key":"k","provider":"p","endpoint":"other","model":"m","status":1000,"outcome":"ok"}"#,
            #"{"v":1,"id":"x","ts":"2026-11-22T15:43:01Z","collector":"c","key":"k","provider":"p","endpoint":"other","model":"m","status":200,"outcome":"ok","tags":{"a":1}}"#,
            #"{"v":1,"id":"x","ts":"2026-11-22T15:43:01Z","collector":"c","key":"k","provider":"p","endpoint":"other","model":"m","status":200,"outcome":"ok","prompt_sim":"xyz"}"#,
            #"{"v":1,"id":"x","ts":"2026-11-22T15:43:01Z","collector":"c","key":"k","provider":"p","endpoint":"other","model":"m","status":200,"outcome":"ok","latency_ms":"fast"}"#,
        ]
        return lines.map { $0.hasSuffix("\n") ? String($0.dropLast()) : $0 }
    }()

    @Test(arguments: lines)
    func agreeOnHandWrittenLines(line: String) {
        let bytes = Array(line.utf8)
        #expect(fast(bytes) == generic(bytes), "\(line)")
    }

    @Test func agreeOnMutatedAndCutLines() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]",:\0123456789.eE+-tfnu "#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xFF]
        var disagreements = 0
        for line in Self.lines.prefix(3) {
            let base = Array(line.utf8)
            for cut in 0...base.count {
                if fast(Array(base[..<cut])) != generic(Array(base[..<cut])) { disagreements += 1 }
            }
            for _ in 0..<4000 {
                var bytes = base
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    let i = Int.random(in: 0..<bytes.count, using: &generator)
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: bytes[i] = alphabet.randomElement(using: &generator)!
                    case 1: bytes.remove(at: i)
                    default: bytes.insert(alphabet.randomElement(using: &generator)!, at: i)
                    }
                }
                let (f, g) = (fast(bytes), generic(bytes))
                if f != g {
                    disagreements += 1
                    Issue.record("fast \(f) vs generic \(g) on \(String(decoding: bytes, as: UTF8.self))")
                    if disagreements > 5 { return }
                }
            }
        }
        #expect(disagreements == 0)
    }

    /// Whatever the fast reader accepts, Foundation's JSONDecoder reads as JSON with the same core fields.
    @Test func acceptedLinesDecodeWithJSONDecoder() throws {
        struct Core: Decodable {
            var v: Int
            var id: String
            var key: String
            var model: String
            var status: Int
        }
        for line in Self.lines {
            guard case .event(let event) = fast(Array(line.utf8)) else { continue }
            let core = try JSONDecoder().decode(Core.self, from: Data(line.utf8))
            #expect(core.id == event.id && core.key == event.key && core.model == event.model && core.status == event.status)
        }
    }
}
