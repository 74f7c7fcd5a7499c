import Crypto
import Foundation
import TallyCore
import Testing

@testable import UsageLog

@Suite("Canonical prompt hashing and SimHash")
struct PromptHasherTests {
    let hasher = PromptHasher(secret: Array("deployment-secret-1".utf8))

    func request(_ text: String) throws -> JSONValue {
        try JSONValue.parse(Array(text.utf8))
    }

    @Test func keyOrderAndWhitespaceDoNotChangeTheHash() throws {
        let a = try request(
            #"{"model":"gpt-4o","temperature":0.2,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Summarise the Q3 report"}]}"#
        )
        let b = try request(
            """
            {
              "messages": [ {"content": "Be brief.", "role": "system"},
                            {"content": "Summarise the Q3 report", "role": "user"} ],
              "stream": true,
              "model": "gpt-4o"
            }
            """)
        let fa = try #require(hasher.fingerprint(model: "gpt-4o", request: a))
        let fb = try #require(hasher.fingerprint(model: "gpt-4o", request: b))
        #expect(fa.hash == fb.hash)
        #expect(fa.hash.count == 64 && fa.hash == fa.hash.lowercased())
        #expect(fa.sim == fb.sim)
    }

    @Test func escapesThatMeanTheSameTextHashTheSame() throws {
        let a = try request(#"{"prompt":"caf\u00e9 \/ menu"}"#)
        let b = try request(#"{"prompt":"café / menu"}"#)
        #expect(hasher.fingerprint(model: "m", request: a)?.hash == hasher.fingerprint(model: "m", request: b)?.hash)
    }

    @Test func oneChangedWordChangesTheHash() throws {
        let a = try request(#"{"messages":[{"role":"user","content":"Summarise the Q3 report"}]}"#)
        let b = try request(#"{"messages":[{"role":"user","content":"Summarise the Q4 report"}]}"#)
        #expect(hasher.fingerprint(model: "gpt-4o", request: a)?.hash != hasher.fingerprint(model: "gpt-4o", request: b)?.hash)
    }

    @Test func theModelAndTheSecretArePartOfTheHash() throws {
        let body = try request(#"{"messages":[{"role":"user","content":"hello"}]}"#)
        let other = PromptHasher(secret: Array("deployment-secret-2".utf8))
        let base = hasher.fingerprint(model: "gpt-4o", request: body)?.hash
        #expect(base != hasher.fingerprint(model: "gpt-4o-mini", request: body)?.hash)
        #expect(base != other.fingerprint(model: "gpt-4o", request: body)?.hash)
    }

    /// The documented canonical form, checked byte for byte, and its HMAC against swift-crypto directly.
    @Test func canonicalFormIsTheDocumentedOne() throws {
        let body = try request(
            #"{"system":"S","model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"Hi\n"}]}]}"#
        )
        let canonical = try #require(PromptHasher.canonicalForm(model: "claude-sonnet-4-5", request: body))
        let expected = #"{"messages":[{"content":[{"text":"Hi\n","type":"text"}],"role":"user"}],"model":"claude-sonnet-4-5","system":"S"}"#
        #expect(String(decoding: canonical, as: UTF8.self) == expected)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(expected.utf8), using: SymmetricKey(data: Array("deployment-secret-1".utf8)))
        #expect(hasher.fingerprint(model: "claude-sonnet-4-5", request: body)?.hash == Hex.encode(mac))
    }

    /// Objects of one, two and more members, in and out of order, with repeated keys (the last wins): the same sorted,
    /// deduplicated form whichever way the writer takes.
    @Test func canonicalObjectsSortAndKeepTheLastOfRepeatedKeys() throws {
        let cases: [(String, String)] = [
            (#"{}"#, #"{}"#), (#"{"b":1}"#, #"{"b":1}"#), (#"{"b":1,"a":2}"#, #"{"a":2,"b":1}"#), (#"{"a":1,"b":2}"#, #"{"a":1,"b":2}"#),
            (#"{"a":1,"a":2}"#, #"{"a":2}"#), (#"{"c":1,"a":2,"b":3}"#, #"{"a":2,"b":3,"c":1}"#),
            (#"{"b":1,"a":2,"b":3}"#, #"{"a":2,"b":3}"#), (#"{"é":1,"e":2}"#, #"{"e":2,"é":1}"#),
        ]
        for (input, expected) in cases {
            var out: [UInt8] = []
            JSONWriter.appendCanonical(try JSONValue.parse(Array(input.utf8)), to: &out)
            #expect(String(decoding: out, as: UTF8.self) == expected, "\(input)")
        }
    }

    @Test func requestsWithoutPromptFieldsHaveNoFingerprint() throws {
        #expect(hasher.fingerprint(model: "m", request: try request(#"{"model":"m","file":"x"}"#)) == nil)
    }

    @Test func textExcludesRolesAndTypes() throws {
        let body = try request(#"{"system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Hello"}]}]}"#)
        let fingerprint = try #require(hasher.fingerprint(model: "m", request: body))
        #expect(fingerprint.text == "Hello\nBe brief.")
        #expect(fingerprint.chars == 15)
    }

    @Test func charsCountUnicodeScalarsWhateverTheirEncodedLength() throws {
        // One to four UTF-8 bytes per scalar, a skin-tone modifier and a combining accent (scalars, not characters).
        let body = try request(#"{"messages":[{"role":"user","content":"Grüße, 東京 👍🏽 e\u0301 ok"}]}"#)
        let fingerprint = try #require(hasher.fingerprint(model: "m", request: body))
        #expect(fingerprint.chars == Int64(fingerprint.text.unicodeScalars.count))
        #expect(fingerprint.chars == 18)
    }

    /// The text is the string values joined by newlines, objects' members in key order (equal keys in document order),
    /// as it was first written: the SimHash and the preview are made from it.
    @Test func textIsTheSameAsEver() throws {
        func reference(_ value: JSONValue, into parts: inout [String]) {
            switch value {
            case .string(let s): if !s.isEmpty { parts.append(s) }
            case .array(let elements): for element in elements { reference(element, into: &parts) }
            case .object(let members):
                for member in members.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) })
                where !PromptText.structuralKeys.contains(member.key) {
                    reference(member.value, into: &parts)
                }
            default: break
            }
        }
        let bodies = [
            #"{"messages":[{"role":"user","content":"b"},{"content":"a","role":"system"}],"system":"s"}"#,
            #"{"messages":[{"z":"1","a":"2"},{"a":"1","a":"2"},{"b":"x","a":"y","c":"z","a":"w"}]}"#,
            #"{"input":[["",["deep",{"text":"é東👍","type":"input_text"}]],""],"instructions":"","prompt":7}"#,
            #"{"messages":[{"content":[{"type":"text","text":"one"},{"text":"two","cache_control":{"type":"x"}}],"name":"n"}]}"#,
            #"{"prompt":["", "", "only"]}"#, #"{"messages":[]}"#,
        ]
        for body in bodies {
            let json = try request(body)
            var parts: [String] = []
            for field in PromptHasher.promptFields { if let value = json[field] { reference(value, into: &parts) } }
            #expect(PromptText.normalised(request: json) == parts.joined(separator: "\n"), "\(body)")
        }
    }

    /// The count reads eight bytes at a time: every length around that, and scalars of every encoded length placed at
    /// every offset, give what Swift counts.
    @Test func scalarCountsAgreeWithSwiftOnEveryLengthAndOffset() {
        var generator = SystemRandomNumberGenerator()
        let scalars: [Character] = ["a", "Z", " ", "\n", "ü", "ß", "東", "京", "👍", "🏽", "\u{301}", "\u{7F}", "\u{80}", "\u{10FFFF}"]
        for length in 0...40 {
            for _ in 0..<20 {
                let text = String((0..<length).map { _ in scalars.randomElement(using: &generator)! })
                #expect(PromptHasher.scalarCount(text) == text.unicodeScalars.count, "\(text.debugDescription)")
            }
        }
        let long = String(repeating: "Grüße, 東京 👍🏽 e\u{301} ok ", count: 500)
        #expect(PromptHasher.scalarCount(long) == long.unicodeScalars.count)
    }

    static let paragraph = """
        You are a careful financial analyst. Read the attached quarterly statement for the retail division and write a \
        short summary for the executive team. Cover revenue against plan, gross margin, operating costs, inventory levels \
        and cash flow. Point out anything that moved by more than five percent since the previous quarter and suggest two \
        questions the board should ask. Keep the tone neutral, avoid jargon, and do not speculate beyond what the figures \
        show. Use plain sentences and finish with a one line outlook for the next quarter based on the trend so far.
        """

    @Test func oneWordEditStaysClose() {
        let base = SimHash.compute(Self.paragraph)
        let edited = SimHash.compute(Self.paragraph.replacingOccurrences(of: "retail division", with: "online division"))
        let unrelated = SimHash.compute(
            "Translate the following German sentence into English and explain its grammar in detail for a beginner who is learning the language at home with no teacher."
        )
        #expect(SimHash.distance(base, edited) <= 3)
        #expect(SimHash.distance(base, unrelated) >= 16)
        #expect(SimHash.compute(Self.paragraph.uppercased()) == base, "case does not matter")
    }

    /// SimHashes in logs written by different collector versions are compared: the result must never change. This is
    /// the algorithm as first written, one bit at a time, which `SimHash.compute` must match on every text.
    static func referenceSimHash(_ text: String) -> UInt64 {
        var counts = [Int](repeating: 0, count: 64)
        var words = 0
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var inWord = false
        func endWord() {
            guard inWord else { return }
            let h = SimHash.mix(hash)
            for bit in 0..<64 where (h >> UInt64(bit)) & 1 == 1 { counts[bit] += 1 }
            words += 1
            hash = 0xcbf2_9ce4_8422_2325
            inWord = false
        }
        for var byte in text.utf8 {
            if (0x41...0x5A).contains(byte) { byte += 32 }
            if (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) || byte >= 0x80 {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
                inWord = true
            } else {
                endWord()
            }
        }
        endWord()
        var result: UInt64 = 0
        for bit in 0..<64 where counts[bit] * 2 > words { result |= 1 << UInt64(bit) }
        return result
    }

    @Test func simHashIsTheSameAsEverOnShortAndLongTexts() {
        var generator = SystemRandomNumberGenerator()
        let vocabulary = Self.paragraph.split(separator: " ").map(String.init) + ["Größe", "価格", "😀", "x", "42"]
        // Around the points where the packed counters are carried (255 and 510 words), and far beyond them.
        for count in [0, 1, 2, 3, 63, 254, 255, 256, 509, 510, 511, 2000, 20_000] {
            let text = (0..<count).map { _ in vocabulary.randomElement(using: &generator)! }.joined(separator: " ")
            #expect(SimHash.compute(text) == Self.referenceSimHash(text), "\(count) words")
        }
        // One word repeated: every vote is the same, so the result is that word's hash.
        let same = Array(repeating: "budget", count: 1000).joined(separator: " ")
        #expect(SimHash.compute(same) == SimHash.mix(Self.referenceWordHash("budget")))
        #expect(SimHash.compute(Self.paragraph) == Self.referenceSimHash(Self.paragraph))
        #expect(SimHash.compute("") == 0)
        #expect(SimHash.compute(" ,.;") == 0)
    }

    static func referenceWordHash(_ word: String) -> UInt64 {
        word.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
    }

    @Test func simHashHexRoundTrips() {
        #expect(SimHash.hex(0x00ab) == "00000000000000ab")
        #expect(SimHash.parseHex("00000000000000ab") == 0xab)
        #expect(SimHash.parseHex("+0000000000000ab") == nil)
        #expect(SimHash.parseHex("ab") == nil)
    }
}
