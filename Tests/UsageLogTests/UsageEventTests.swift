import Foundation
import TallyCore
import Testing

@testable import UsageLog

@Suite("Usage events as v1 log lines")
struct UsageEventTests {
    static func sample(id: String = "0192f1c2-7d3e-7a00-8000-000000000001", model: String = "gpt-4o-mini") -> UsageEvent {
        UsageEvent(
            id: id, timestamp: Timestamp.parse("2026-11-22T15:43:01.123Z")!, collector: "c1", key: "k-alice-dev",
            provider: "openai", endpoint: .chatCompletions, model: model, status: 200, outcome: .ok, stream: true,
            usage: .init(input: 1200, output: 300, cachedInput: 1000, cacheWrite: 0, reasoning: 100),
            latencyMs: 812, ttftMs: 95, promptHash: String(repeating: "ab", count: 32), promptSim: 0x0123_4567_89ab_cdef,
            promptChars: 4711, preview: nil, user: "end-user-7", tags: ["team": "search", "env": "prod"], error: nil)
    }

    @Test func roundTripsThroughItsLine() throws {
        let event = Self.sample()
        let line = event.jsonLine
        #expect(line.hasSuffix("}\n"))
        #expect(line.hasPrefix(#"{"v":1,"id":"0192f1c2-7d3e-7a00-8000-000000000001","ts":"2026-11-22T15:43:01.123Z""#))
        #expect(try UsageEvent(jsonLine: line) == event)
    }

    /// The fields added to v1 later (`service_tier`, `usage_estimated`, `usage.cache_write_1h`,
    /// `usage.web_search_requests`) are written only when they say something, so other lines keep their bytes, and
    /// both readers read them back.
    @Test func laterFieldsAreWrittenOnlyWhenTheySaySomething() throws {
        var event = Self.sample()
        let plain = event.jsonLine
        #expect(!plain.contains("service_tier") && !plain.contains("cache_write_1h") && !plain.contains("usage_estimated"))
        #expect(plain.hasSuffix(#","error":null}"# + "\n"))
        event.usage = .init(
            input: 1200, output: 300, cachedInput: 100, cacheWrite: 900, reasoning: 0, cacheWrite1h: 600, webSearchRequests: 2)
        event.serviceTier = "priority"
        event.usageEstimated = true
        let line = event.jsonLine
        #expect(line.contains(#""reasoning":0,"cache_write_1h":600,"web_search_requests":2},"#))
        #expect(line.hasSuffix(#","error":null,"service_tier":"priority","usage_estimated":true}"# + "\n"))
        #expect(try UsageEvent(jsonLine: line) == event)
        let fast = try Array(line.utf8).withUnsafeBufferPointer { buffer throws(LineError) in try UsageEvent(fastLine: buffer) }
        #expect(fast == event)
        // A 1-hour part larger than the cache writes it is part of is refused.
        event.usage?.cacheWrite1h = 901
        #expect(throws: LineError(.invalidUsage, "usage.cache_write_1h exceeds usage.cache_write")) {
            try UsageEvent(jsonLine: event.jsonLine)
        }
    }

    @Test func nullsAndAbsentOptionalFieldsRead() throws {
        let line =
            #"{"v":1,"id":"x","ts":"2026-11-22T15:43:01Z","collector":"c1","key":"k","provider":"openai","endpoint":"embeddings","model":"m","status":500,"outcome":"upstream_error","future_field":{"a":[1,2]}}"#
        let event = try UsageEvent(jsonLine: line)
        #expect(event.usage == nil)
        #expect(event.stream == false)
        #expect(event.tags.isEmpty)
        #expect(event.timestamp % 1000 == 0)
    }

    /// Hostile strings from outside (model names, tags, previews) must still give valid JSON that reads back the same.
    @Test(arguments: [
        "quote \" and backslash \\", "line\nbreak\r\ttab", "nul \u{0} and bell \u{7} and \u{1F}", "emoji 🧾 and é and 漢字",
        "</script><script>alert(1)</script>", "=HYPERLINK(\"http://x\")", "\u{2028}\u{2029}",
    ])
    func hostileStringsStayValidJSON(text: String) throws {
        var event = Self.sample(model: text)
        event.tags = [text: text]
        event.error = text
        event.preview = text
        let line = event.jsonLine
        // Foundation's parser agrees the line is valid JSON with the same strings.
        let parsed = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(parsed?["model"] as? String == text)
        #expect((parsed?["tags"] as? [String: String])?[text] == text)
        #expect(try UsageEvent(jsonLine: line) == event)
        #expect(!line.dropLast().contains("\n"), "one event, one line")
    }

    @Test func badLinesSayWhatIsWrong() {
        func kind(_ line: String) -> LineError.Kind? {
            do {
                _ = try UsageEvent(jsonLine: line)
                return nil
            } catch {
                return error.kind
            }
        }
        let good = Self.sample().jsonLine
        #expect(kind(good) == nil)
        #expect(kind("not json") == .notJSON)
        #expect(kind(String(good.prefix(80))) == .notJSON)
        #expect(kind("[1,2]") == .notJSON)
        #expect(kind(good.replacingOccurrences(of: #""key":"k-alice-dev","#, with: "")) == .missingField)
        #expect(kind(good.replacingOccurrences(of: #""input":1200"#, with: #""input":-5"#)) == .invalidUsage)
        #expect(kind(good.replacingOccurrences(of: #""output":300"#, with: #""output":50"#)) == .invalidUsage)  // reasoning > output
        #expect(kind(good.replacingOccurrences(of: #""input":1200"#, with: #""input":1.5"#)) == .invalidField)
        #expect(kind(good.replacingOccurrences(of: #"{"v":1,"#, with: #"{"v":2,"#)) == .futureVersion)
        #expect(kind(good.replacingOccurrences(of: #""outcome":"ok""#, with: #""outcome":"maybe""#)) == .invalidField)
        #expect(kind(good.replacingOccurrences(of: "2026-11-22T15:43:01.123Z", with: "yesterday")) == .invalidField)
        #expect(kind(good.replacingOccurrences(of: #""key":"k-alice-dev","#, with: #""key":"a","key":"b","#)) == .invalidField)
    }
}

@Suite("JSON parser")
struct JSONParserTests {
    /// The parser accepts exactly what Foundation accepts on a set of edge cases, and keeps number literals exact.
    @Test(arguments: [
        #"{}"#, #"[]"#, #" {"a" : [1, -0, 2.5e-8, 1E+2, true, false, null] } "#, #""\u00e9\ud83e\uddfe""#,
        #"01"#, #"1."#, #".5"#, #"-"#, #"{"a" 1}"#, #""\x""#, #""\ud800""#, "\"a\u{1}\"",
        #"{"a":1} x"#, #"tru"#, #"nul"#, #"[1e]"#, #""unterminated"#, "",
    ])
    func agreesWithFoundation(text: String) {
        let ours = (try? JSONValue.parse(Array(text.utf8))) != nil
        let foundation = (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil
        #expect(ours == foundation, "\(text)")
    }

    /// RFC 8259 allows no trailing commas; Foundation on Linux accepts them, Tally's reader does not.
    @Test(arguments: [#"{"a":1,}"#, #"[1,]"#])
    func refusesTrailingCommas(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func keepsNumberLiteralsAndOrder() throws {
        let value = try JSONValue.parse(Array(#"{"price":7.5e-08,"b":1,"a":2,"b":3}"#.utf8))
        #expect(value["price"]?.numberLiteral == "7.5e-08")
        #expect(value["b"]?.int64Value == 3, "the last of duplicate members wins")
    }

    /// Strings are scanned eight bytes at a time: a quote, a backslash escape, a control character, a non-ASCII
    /// character or a broken UTF-8 byte at any offset of a string of any length is found just as byte by byte.
    @Test func stringsReadTheSameWhereverTheirSpecialBytesFall() throws {
        for length in 0...24 {
            for at in 0...length {
                let before = String(repeating: "a", count: at)
                let after = String(repeating: "b", count: length - at)
                let cases: [(json: [UInt8], expected: String?)] = [
                    (Array(#""\#(before)\"\#(after)""#.utf8), before + "\"" + after),
                    (Array(#""\#(before)\\\#(after)""#.utf8), before + "\\" + after),
                    (Array(#""\#(before)\u00e9\#(after)""#.utf8), before + "é" + after),
                    (Array(#""\#(before)é東👍\#(after)""#.utf8), before + "é東👍" + after),
                    (Array("\"\(before)\u{1}\(after)\"".utf8), nil),
                    (Array("\"\(before)\t\(after)\"".utf8), nil),
                    (Array("\"\(before)".utf8) + [0xC3] + Array("\(after)\"".utf8), nil),
                    (Array("\"\(before)".utf8) + [0xFF, 0xFE] + Array("\(after)\"".utf8), nil),
                    (Array("\"\(before)\(after)".utf8), nil),
                ]
                for (json, expected) in cases {
                    let parsed = try? JSONValue.parse(json)
                    #expect(parsed?.stringValue == expected, "\(String(decoding: json, as: UTF8.self).debugDescription)")
                }
            }
        }
    }

    /// The eight-byte test says there is a quote, a backslash or a control character exactly when there is one,
    /// whatever the other bytes are.
    @Test func theEightByteTestMissesNoStop() {
        var generator = SystemRandomNumberGenerator()
        let interesting: [UInt8] = [0x00, 0x01, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7F, 0x80, 0xA2, 0xDC, 0xFF]
        for _ in 0..<20_000 {
            let bytes = (0..<8).map { _ in
                Bool.random(using: &generator)
                    ? interesting.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
            }
            let word = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            let stops = bytes.contains { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }
            #expect(JSONWriter.mayStopAString(word) == stops, "\(bytes)")
        }
    }

    /// The parser hands out one made-once string for names such as `prompt_tokens` (`KnownStrings`): every one of
    /// them, and every string a byte away from one (changed, cut short, longer, or escaped), reads as its own bytes.
    @Test func namesMadeOnceReadAsTheirBytes() throws {
        var candidates: [String] = []
        for known in KnownStrings.strings {
            let bytes = Array(known.utf8)
            candidates.append(known)
            candidates.append(String(known.dropLast()))
            candidates.append(known + "s")
            candidates.append("_" + known)
            for at in bytes.indices {
                var changed = bytes
                changed[at] = changed[at] == UInt8(ascii: "x") ? UInt8(ascii: "y") : UInt8(ascii: "x")
                candidates.append(String(decoding: changed, as: UTF8.self))
            }
        }
        for candidate in candidates {
            let parsed = try JSONValue.parse(Array(#"{"\#(candidate)":"\#(candidate)"}"#.utf8))
            guard case .object(let members) = parsed, let member = members.first else {
                Issue.record("\(candidate) did not parse as an object")
                continue
            }
            #expect(Array(member.key.utf8) == Array(candidate.utf8), "\(candidate)")
            #expect(member.value.stringValue.map { Array($0.utf8) } == Array(candidate.utf8), "\(candidate)")
        }
        let escaped = try JSONValue.parse(Array(#"{"prompt\u005ftokens":1}"#.utf8))
        #expect(escaped["prompt_tokens"]?.int64Value == 1)
    }

    @Test func refusesDeepNesting() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(deep.utf8)) }
    }

    /// Random mutations of a valid line never crash the parser, and whatever it accepts Foundation accepts too.
    @Test func survivesMutatedLines() {
        var generator = SystemRandomNumberGenerator()
        let base = Array(UsageEventTests.sample().jsonLine.utf8.dropLast())
        let alphabet = Array(#"{}[]",:\0123456789.eE+-tfnu"#.utf8) + [0x00, 0x0A, 0xC3, 0xFF]
        for _ in 0..<3000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let i = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[i] = alphabet.randomElement(using: &generator)!
                case 1: bytes.remove(at: i)
                default: bytes.insert(alphabet.randomElement(using: &generator)!, at: i)
                }
            }
            // Numbers beyond Double's range (4E711) are valid JSON that Foundation refuses and we keep as text.
            let text = String(decoding: bytes, as: UTF8.self)
            let hugeExponent = text.contains(/[eE][+-]?\d{3,}/)
            if !hugeExponent, (try? JSONValue.parse(bytes)) != nil {
                #expect((try? JSONSerialization.jsonObject(with: Data(bytes))) != nil, "\(String(decoding: bytes, as: UTF8.self))")
            }
            _ = try? bytes.withUnsafeBufferPointer { try UsageEvent(jsonLine: $0) }
        }
    }
}

@Suite("RFC 3339 timestamps")
struct TimestampTests {
    @Test func formatsAndParsesUTCWithMilliseconds() {
        let ms = Timestamp.parse("2024-02-29T23:59:59.999Z")!
        #expect(Timestamp.format(milliseconds: ms) == "2024-02-29T23:59:59.999Z")
        #expect(Timestamp.format(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(milliseconds: -1) == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp.formatCompact(milliseconds: ms) == "20240229T235959Z")
    }

    @Test func offsetsAndFractionsNormalise() {
        #expect(Timestamp.parse("2026-11-22T16:43:01+01:00") == Timestamp.parse("2026-11-22T15:43:01Z"))
        #expect(Timestamp.parse("2026-11-22T15:43:01.1239Z")! % 1000 == 123)
        #expect(Timestamp.parse("2026-11-22T15:43:01.5Z")! % 1000 == 500)
    }

    @Test(arguments: [
        "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-22 15:43", "2026-11-22T15:43:01", "2026-11-22T25:00:00Z",
        "2026-11-22T15:43:01.Z",
    ])
    func rejectsWhatIsNotRFC3339(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func dateArithmeticMatchesFoundation() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        // From 1600 on: Foundation's Gregorian calendar is Julian before October 1582.
        for days in stride(from: -135_000, through: 800_000, by: 997) {
            let date = Date(timeIntervalSince1970: Double(days) * 86_400)
            let parts = calendar.dateComponents([.year, .month, .day], from: date)
            let ours = Timestamp.civilFromDays(days)
            #expect(ours.year == parts.year && ours.month == parts.month && ours.day == parts.day)
            #expect(Timestamp.daysFromCivil(year: ours.year, month: ours.month, day: ours.day) == days)
        }
    }
}
