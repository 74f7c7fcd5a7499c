import Foundation
import NIOHTTP1
import Synth
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Collector

@Suite("Usage parsing, byte by byte")
struct ParserTests {
    static let openAIStream = [
        #"data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}"#,
        #"data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}"#,
        "data: [DONE]",
    ].map { $0 + "\n\n" }.joined()

    /// Feeds `text` split at `cut`; returns what would reach the client and the parser.
    func feed(_ text: String, cut: Int, kind: ProviderKind, drop: Bool) -> (String, SSEUsageParser) {
        var parser = SSEUsageParser(kind: kind, dropInjectedUsageChunk: drop)
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        for part in [bytes[..<cut], bytes[cut...]] {
            let chunk = Array(part)
            let forwarded = chunk.withUnsafeBytes { parser.feed($0) }
            out.append(contentsOf: forwarded ?? chunk)
        }
        out.append(contentsOf: parser.finish())
        return (String(decoding: out, as: UTF8.self), parser)
    }

    /// A long event that arrives in many small chunks is scanned once, not again from its start with each chunk, and a
    /// CRLF split between two chunks still ends its line.
    @Test func eachByteIsScannedOnceHoweverTheStreamIsChunked() {
        let long =
            "data: {\"choices\":[{\"delta\":{\"content\":\"" + String(repeating: "x", count: 64 << 10)
            + "\"}}],\"model\":\"gpt-4o\"}\r\n\r\n"
        let text = long + Self.openAIStream
        let bytes = Array(text.utf8)
        for size in [1, 7, 64, 4096] {
            var parser = SSEUsageParser(kind: .openai, dropInjectedUsageChunk: true)
            var out: [UInt8] = []
            var at = 0
            while at < bytes.count {
                let chunk = Array(bytes[at..<min(at + size, bytes.count)])
                out.append(contentsOf: chunk.withUnsafeBytes { parser.feed($0) } ?? chunk)
                at += size
            }
            out.append(contentsOf: parser.finish())
            #expect(parser.bytesScanned == bytes.count, "chunks of \(size)")
            #expect(parser.dataEvents == 4 && parser.usage?.input == 9 && parser.completed)
            #expect(
                String(decoding: out, as: UTF8.self) == long
                    + Self.openAIStream.replacingOccurrences(of: Self.openAIStream.components(separatedBy: "\n\n")[1] + "\n\n", with: ""))
        }
    }

    @Test func openAIUsageWhereverTheChunksSplit() {
        let bytes = Self.openAIStream.utf8.count
        let withoutUsage = Self.openAIStream.components(separatedBy: "\n\n").filter { !$0.contains(#""choices":[],"#) && !$0.isEmpty }.map {
            $0 + "\n\n"
        }.joined()
        for cut in 0...bytes {
            let (passed, parser) = feed(Self.openAIStream, cut: cut, kind: .openai, drop: false)
            #expect(passed == Self.openAIStream)
            #expect(parser.usage == UsageEvent.Usage(input: 9, output: 4, cachedInput: 2, reasoning: 1))
            #expect(parser.model == "gpt-4o" && parser.completed)
            let (dropped, parser2) = feed(Self.openAIStream, cut: cut, kind: .openai, drop: true)
            #expect(dropped == withoutUsage, "cut at \(cut)")
            #expect(parser2.usage?.input == 9)
        }
    }

    @Test func anthropicDeltasAreCumulativeNotSummed() {
        let stream = [
            "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":100,\"cache_read_input_tokens\":50,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\r\n\r\n",
            "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":10}}\r\n\r\n",
            "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":25}}\r\n\r\n",
            "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
        ].joined()
        for cut in stride(from: 0, through: stream.utf8.count, by: 7) {
            let (passed, parser) = feed(stream, cut: cut, kind: .anthropic, drop: false)
            #expect(passed == stream)
            #expect(parser.usage == UsageEvent.Usage(input: 150, output: 25, cachedInput: 50, cacheWrite: 0))
            #expect(parser.model == "claude-haiku-4-5")
        }
    }

    @Test func anErrorEventAfterA200IsNoticed() {
        let stream = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
        #expect(feed(stream, cut: 10, kind: .anthropic, drop: false).1.streamError == "Overloaded")
    }

    @Test func plainBodiesGiveUpUsageInBoundedMemory() throws {
        // A large embeddings body: usage at the end, after megabytes of numbers.
        var body = #"{"object":"list","data":[{"embedding":["#
        body += Array(repeating: "0.0123", count: 200_000).joined(separator: ",")
        body +=
            #"],"note":"a \"usage\": {\"prompt_tokens\": 999} inside a string"}],"model":"text-embedding-3-large","usage":{"prompt_tokens":42,"total_tokens":42}}"#
        var capture = TopLevelFieldCapture(wanted: ["usage", "model"])
        let bytes = Array(body.utf8)
        for start in stride(from: 0, to: bytes.count, by: 4093) {
            bytes[start..<min(start + 4093, bytes.count)].withUnsafeBytes { capture.feed($0) }
        }
        #expect(capture.value("model")?.stringValue == "text-embedding-3-large")
        #expect(OpenAIAdapter.usage(try #require(capture.value("usage"))) == UsageEvent.Usage(input: 42, output: 0))
    }

    @Test func topLevelCaptureIsTheSameWhereverTheChunksSplit() throws {
        // Escapes right before quotes and backslashes, a key that looks like a wanted one inside a string, nested
        // members named like wanted ones: every split in two, and one byte at a time, reads what the whole body does.
        let body = Array(
            #"{"id":"c\\","choices":[{"message":{"content":"say \"model\": \\\"x\" {\"usage\":1}","model":"inner"}}],"model" : "gpt-\"4o\"","usage":{"prompt_tokens":7,"completion_tokens":3}}"#
                .utf8)
        func captured(_ chunks: [ArraySlice<UInt8>]) -> [String: [UInt8]] {
            var capture = TopLevelFieldCapture(wanted: ["usage", "model"])
            for chunk in chunks { chunk.withUnsafeBytes { capture.feed($0) } }
            return capture.captured
        }
        let whole = captured([body[...]])
        #expect(whole["model"] == Array(#""gpt-\"4o\"""#.utf8))
        #expect(whole["usage"] == Array(#"{"prompt_tokens":7,"completion_tokens":3}"#.utf8))
        for split in 0...body.count {
            #expect(captured([body[..<split], body[split...]]) == whole, "split at \(split)")
        }
        #expect(captured(body.indices.map { body[$0...$0] }) == whole)
    }

    /// Generated JSON (nested arrays and objects, strings holding quotes, backslashes and brackets, white space
    /// between tokens), fed in random chunks: the captured members are what a full parse of the body gives, for one
    /// object and for an array of objects (the last one's members win).
    @Test(arguments: [false, true])
    func topLevelCaptureAgreesWithAFullParse(insideArray: Bool) throws {
        var random = Xoshiro256(seed: insideArray ? 7 : 3)
        let wanted = ["usage", "model", "service_tier"]
        for _ in 0..<400 {
            let objects = insideArray ? Int.random(in: 1...3, using: &random) : 1
            var text = insideArray ? "[" : ""
            for index in 0..<objects {
                if index > 0 { text += "," }
                text += Self.randomObject(depth: 0, topLevel: true, using: &random)
            }
            if insideArray { text += "]" }
            let body = Array(text.utf8)
            let parsed = try JSONValue.parse(body)
            var members = [parsed]
            if insideArray, case .array(let objects) = parsed { members = objects }

            var capture = TopLevelFieldCapture(wanted: Set(wanted), insideArray: insideArray)
            var at = 0
            while at < body.count {
                let end = min(body.count, at + Int.random(in: 1...40, using: &random))
                body[at..<end].withUnsafeBytes { capture.feed($0) }
                at = end
            }
            for key in wanted {
                #expect(capture.value(key) == members.last { $0[key] != nil }?[key], "\(key) in \(text)")
            }
        }
    }

    /// `ByteSearch.find` (memchr for the first byte) against a plain scan, on generated bytes from a small alphabet
    /// (so that near misses abound), from every start, with the needle at the very end and longer than the bytes.
    @Test func byteSearchFindsWhatAPlainScanFinds() {
        var random = Xoshiro256(seed: 11)
        let needle: StaticString = "\"usage\""
        let needleBytes = Array("\"usage\"".utf8)
        func plainScan(_ bytes: [UInt8], from start: Int) -> Int? {
            guard bytes.count >= needleBytes.count, start <= bytes.count - needleBytes.count else { return nil }
            return (start...(bytes.count - needleBytes.count)).first { Array(bytes[$0..<$0 + needleBytes.count]) == needleBytes }
        }
        for round in 0..<300 {
            var bytes = (0..<Int.random(in: 0...60, using: &random)).map { _ in Array("\"usage\"x".utf8).randomElement(using: &random)! }
            if round % 3 == 0 { bytes += needleBytes }
            for start in 0...bytes.count {
                let found = bytes.withUnsafeBufferPointer { ByteSearch.find($0, needle, from: start) }
                #expect(found == plainScan(bytes, from: start), "\(String(decoding: bytes, as: UTF8.self)) from \(start)")
            }
        }
    }

    static func space(using random: inout Xoshiro256) -> String { ["", "", " ", "\n  "].randomElement(using: &random)! }

    static func randomObject(depth: Int, topLevel: Bool, using random: inout Xoshiro256) -> String {
        let names = ["usage", "model", "service_tier", "id", "choices", "mo\\\"del", "{\\\"usage\\\":1}"]
        let count = Int.random(in: 0...(topLevel ? 5 : 3), using: &random)
        // No name twice in one object: which of two equal members counts is not what this test is about.
        let chosen = names.shuffled(using: &random).prefix(count)
        let members = chosen.map { name in
            "\"\(name)\"" + space(using: &random) + ":" + space(using: &random) + randomValue(depth: depth + 1, using: &random)
        }
        return "{" + space(using: &random) + members.joined(separator: space(using: &random) + "," + space(using: &random))
            + space(using: &random) + "}"
    }

    static func randomValue(depth: Int, using random: inout Xoshiro256) -> String {
        switch Int.random(in: 0...(depth < 4 ? 6 : 3), using: &random) {
        case 0: return String(Int.random(in: -1000...100_000, using: &random))
        case 1: return ["true", "false", "null", "1.5e3"].randomElement(using: &random)!
        case 2, 3:
            let pieces = ["a", "\\\"", "\\\\", "{", "}", "[", "]", ",", ":", "\\n", "é", " "]
            return "\"" + (0..<Int.random(in: 0...6, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined() + "\""
        case 4, 5:
            return randomObject(depth: depth, topLevel: false, using: &random)
        default:
            let items = (0..<Int.random(in: 0...3, using: &random)).map { _ in randomValue(depth: depth + 1, using: &random) }
            return "[" + items.joined(separator: space(using: &random) + ",") + "]"
        }
    }

    @Test func aTopLevelValueOverTheLimitIsNotKeptWhereverTheChunksSplit() {
        func model(_ json: String, split: Int) -> [UInt8]? {
            let bytes = Array(json.utf8)
            var capture = TopLevelFieldCapture(wanted: ["model"], limit: 5)
            for chunk in [bytes[..<split], bytes[split...]] { chunk.withUnsafeBytes { capture.feed($0) } }
            return capture.captured["model"]
        }
        for split in 0...18 {
            #expect(model(#"{"model":  "abc","x":1}"#, split: split) == Array(#""abc""#.utf8))
            #expect(model(#"{"model":"abcd","x":1}"#, split: split) == nil)
        }
    }

    @Test func requestingUsageKeepsTheRestOfTheBody() throws {
        let original = #"{"model":"m","stream":true,"stream_options":{"foo":1},"messages":[]}"#
        let json = try JSONValue.parse(Array(original.utf8))
        let rewritten = try #require(OpenAIAdapter.requestingUsage(Array(original.utf8), json))
        let parsed = try JSONValue.parse(rewritten)
        #expect(parsed["stream_options"]?["include_usage"]?.boolValue == true)
        #expect(parsed["stream_options"]?["foo"]?.int64Value == 1)
        #expect(parsed["model"]?.stringValue == "m")
    }
}

@Suite("Redaction")
struct RedactorTests {
    let redactor = try! Redactor(extraPatterns: ["(?i)project-[a-z]+-secret"])

    @Test(arguments: [
        ("mail jane.doe+x@example.co.uk now", "mail [EMAIL] now"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("not a card 4111 1111 1111 1112", "not a card 4111 1111 1111 1112"),
        ("iban DE89 3704 0044 0532 0130 00 thanks", "iban [IBAN] thanks"),
        ("key sk-ant-api03-abcdefghijklmnop and sk-proj-abcdefghijklmnopqrstu", "key [KEY] and [KEY]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [KEY]"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc", "Authorization: [TOKEN]"),
        ("call +49 30 1234567 today", "call [PHONE] today"),
        ("the project-apollo-secret is out", "the [REDACTED] is out"),
        ("order 12345 shipped in 2026", "order 12345 shipped in 2026"),
        ("café ☕ jane@example.com", "café ☕ [EMAIL]"),
    ])
    func redacts(input: String, expected: String) throws {
        #expect(try redactor.redact(input) == expected)
    }

    @Test func previewsAreCutAfterRedaction() throws {
        #expect(try redactor.preview(of: "write to jane.doe@example.com please", characters: 12) == "write to [EM")
        #expect(try redactor.preview(of: "anything", characters: 0) == nil)
    }

    /// A pattern that cannot finish on a prompt (PCRE2's match limit) fails the redaction: no preview, never the text
    /// with that pattern's matches left in it.
    @Test func aRedactionThatCannotFinishKeepsNoPreview() throws {
        let catastrophic = try Redactor(extraPatterns: [#"(a+)+$"#])
        let prompt = "mail jane.doe@example.com " + String(repeating: "a", count: 40) + "!"
        #expect(throws: PCRE2Pattern.MatchError.self) { try catastrophic.preview(of: prompt, characters: 60) }
        #expect(try catastrophic.preview(of: "mail jane.doe@example.com", characters: 60) == "mail [EMAIL]")
    }
}

@Suite("Revocation list format")
struct RevocationListTests {
    @Test func roundTripsWithItsChecksum() throws {
        let list = RevocationList(entries: [
            .init(keyID: "k-a", reason: "budget: team search spent 103%\tof budget", until: Timestamp.parse("2026-12-01T00:00:00Z")),
            .init(keyID: "k-b", reason: "manual: left", until: nil),
        ])
        let bytes = list.rendered(comments: ["written by tally audit"])
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("# tally-revocations v1\n# sha256 "))
        #expect(text.hasSuffix("k-b\tmanual: left\t-\n"))
        let parsed = try RevocationList(parsing: bytes)
        #expect(parsed.entries.count == 2 && parsed.entries[0].reason == "budget: team search spent 103% of budget")
        #expect(parsed.entries[0].kind == .budget && parsed.entries[1].kind == .manual)
        #expect(parsed.entries[0].message == "team search spent 103% of budget")
        #expect(parsed.entry(forKey: "k-a", at: Timestamp.parse("2026-11-30T00:00:00Z")!) != nil)
        #expect(parsed.entry(forKey: "k-a", at: Timestamp.parse("2026-12-01T00:00:00Z")!) == nil, "until is exclusive")
        #expect(try RevocationList(parsing: RevocationList().rendered()).entries.isEmpty)
    }

    @Test(arguments: [
        ("", "the first line"),
        ("# tally-revocations v1\nk\tr\t-\n", "no '# sha256"),
        ("# tally-revocations v2\n", "the first line"),
    ])
    func refusesBrokenFiles(text: String, message: String) {
        #expect(throws: RevocationList.ParseError.self) { try RevocationList(parsing: Array(text.utf8)) }
    }

    @Test func refusesAnEditedOrCutFile() {
        var bytes = RevocationList(entries: [.init(keyID: "k-a", reason: "manual: x", until: nil)]).rendered()
        #expect(throws: RevocationList.ParseError.self) { try RevocationList(parsing: Array(bytes.dropLast(3))) }
        bytes.append(contentsOf: "k-b\tmanual: sneaked in\t-\n".utf8)
        #expect(throws: RevocationList.ParseError.self) { try RevocationList(parsing: bytes) }
    }
}

@Suite("Event queue")
struct EventQueueTests {
    static let event = UsageEvent(
        id: "x", timestamp: 0, collector: "c", key: "k", provider: "p", endpoint: .other, model: "m",
        status: 200, outcome: .ok, stream: false, usage: nil)

    /// Calls take a slot before they start and hand their event over at the end; a slot frees only once the writer has
    /// written it. Nothing is lost, and no more than the capacity is ever held.
    @Test func slotsBoundTheQueueAndNothingIsLost() async throws {
        let queue = EventQueue(capacity: 4)
        let calls = Task {
            for i in 0..<100 {
                #expect(await queue.reserve(waitingAtMost: .seconds(30)) != .none)
                var e = Self.event
                e.id = "e\(i)"
                queue.send(e)
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(queue.depth + queue.reservedSlots == 4, "the fifth call waits for a slot")
        var received: [String] = []
        while received.count < 100, let batch = await queue.nextBatch() {
            received += batch.map(\.id)
            queue.written(batch.count)
        }
        await calls.value
        queue.close()
        #expect(await queue.nextBatch() == nil)
        #expect(received == (0..<100).map { "e\($0)" })
    }

    /// A writer that cannot write holds its batch's slots: new calls are refused after their wait, calls that already
    /// hold a slot still hand their events over, and once the batch is written the slots come back.
    @Test func aStuckWriterRefusesNewCallsAfterTheirWait() async throws {
        let queue = EventQueue(capacity: 2)
        #expect(await queue.reserve(waitingAtMost: .zero) == .slot)
        #expect(await queue.reserve(waitingAtMost: .zero) == .slot)
        queue.send(Self.event)
        let batch = try #require(await queue.nextBatch())
        queue.writerFailed("cannot write the usage log: No space left on device")
        let started = ContinuousClock.now
        #expect(await queue.reserve(waitingAtMost: .milliseconds(100)) == .none)
        #expect(ContinuousClock.now - started >= .milliseconds(100))
        queue.send(Self.event)  // the call that held the second slot
        #expect(queue.depth == 2 && queue.writerProblem != nil)

        let waiting = Task { await queue.reserve(waitingAtMost: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(20))
        queue.writerFailed(nil)
        queue.written(batch.count)
        #expect(await waiting.value == .slotAfterWaiting, "a slot freed by the writer goes to the waiting call")
        // A call whose client left gives its slot back.
        queue.release()
        #expect(queue.reservedSlots == 0)
    }
}

@Suite("Presented keys")
struct PresentedKeyTests {
    @Test func theBearerSchemeInAnyCaseWithSpacesAroundTheToken() {
        let openai = ProviderAdapters.adapter(for: .openai)
        func key(_ authorization: String) -> String? {
            Proxy.presentedKey(HTTPHeaders([("Authorization", authorization)]), query: nil, adapter: openai)
        }
        #expect(key("Bearer tk-a") == "tk-a")
        #expect(key("bearer  tk-a \t") == "tk-a")
        #expect(key("  BEARER tk-a") == "tk-a")
        #expect(key("Bearer tk a") == "tk a", "the rest of the value, trimmed, is the token")
        for refused in ["Basic tk-a", "Bearer", "Bearer ", "Bearer   ", "Bearertk-a", "Bearer\ttk-a", "Bearerx tk-a", ""] {
            #expect(key(refused) == nil, "\(refused)")
        }
        // Without a bearer token, the provider's own key headers count.
        #expect(
            Proxy.presentedKey(
                HTTPHeaders([("Authorization", "Basic x"), ("api-key", " tk-b ")]), query: nil,
                adapter: ProviderAdapters.adapter(for: .azure)) == "tk-b")
    }
}

@Suite("Header names")
struct HeaderNamesTests {
    /// The set answers what `Set.contains(name.lowercased())` answers, for names in any case, of every length around
    /// the set's, and with non-ASCII characters (the Kelvin sign lowercases to an ASCII k).
    @Test func answersAsTheLowercasedSetDoes() {
        let names: Set<String> = ["connection", "keep-alive", "te", "x-api-key", "authorization", "content-length"]
        let set = HeaderNames(names)
        var tried = [
            "Connection", "CONNECTION", "connection", "connectio", "connectionx", "Keep-Alive", "TE", "Te", "t", "",
            "X-Api-Key", "x-api-key ", "Authorization", "authorisation", "Content-Length", "content_length",
            "\u{212A}eep-alive", "x-api-\u{212A}ey", "Conneçtion", "keep-alive\u{0}", "KEEP-ALIVE", "Host",
        ]
        var generator = SystemRandomNumberGenerator()
        for name in names {
            for _ in 0..<20 {
                tried.append(String(name.map { Bool.random(using: &generator) ? Character($0.uppercased()) : $0 }))
            }
        }
        for name in tried { #expect(set.contains(name) == names.contains(name.lowercased()), "\(name.debugDescription)") }
    }
}
