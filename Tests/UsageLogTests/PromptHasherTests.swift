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

    @Test func simHashHexRoundTrips() {
        #expect(SimHash.hex(0x00ab) == "00000000000000ab")
        #expect(SimHash.parseHex("00000000000000ab") == 0xab)
        #expect(SimHash.parseHex("+0000000000000ab") == nil)
        #expect(SimHash.parseHex("ab") == nil)
    }
}
