import Foundation
import TallyCore
import Testing

@Suite("JSON writer")
struct JSONWriterTests {
    static func written(_ value: some BinaryInteger) -> String {
        var out: [UInt8] = []
        JSONWriter.appendInteger(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Integers are written as Swift writes them, at every width's edges and in between (the 64-bit fast path and the
    /// digit-by-digit one for wider types).
    @Test func integersAreWrittenAsTheirDecimalText() {
        var values: [Int64] = [0, 1, -1, 9, 10, -10, 99, 100, Int64.max, Int64.min, Int64.max - 1, Int64.min + 1]
        var power: Int64 = 1
        while power <= Int64.max / 10 {
            values += [power - 1, power, power + 1, -power]
            power *= 10
        }
        var random = SystemRandomNumberGenerator()
        values += (0..<1000).map { _ in Int64.random(in: .min ... .max, using: &random) }
        for value in values { #expect(Self.written(value) == String(value)) }
        for value in [UInt64.max, UInt64.max - 1, 0] { #expect(Self.written(value) == String(value)) }
        for value in [Int8.min, -1, 0, Int8.max] { #expect(Self.written(value) == String(value)) }
        for value in [Int128.min, Int128(Int64.min) - 1, Int128(UInt64.max) + 1, Int128.max] {
            #expect(Self.written(value) == String(value))
        }
    }

    /// Strings are checked eight bytes at a time: the text written is the same as escaping byte by byte, wherever the
    /// bytes to escape fall, and Foundation reads it back as the same string.
    @Test func stringsAreEscapedTheSameWhereverTheirSpecialBytesFall() throws {
        func reference(_ string: String) -> [UInt8] {
            var out: [UInt8] = [0x22]
            for byte in string.utf8 {
                switch byte {
                case 0x22: out += Array(#"\""#.utf8)
                case 0x5C: out += Array(#"\\"#.utf8)
                case 0x08: out += Array(#"\b"#.utf8)
                case 0x0C: out += Array(#"\f"#.utf8)
                case 0x0A: out += Array(#"\n"#.utf8)
                case 0x0D: out += Array(#"\r"#.utf8)
                case 0x09: out += Array(#"\t"#.utf8)
                case ..<0x20: out += Array(String(format: "\\u%04x", byte).utf8)
                default: out.append(byte)
                }
            }
            return out + [0x22]
        }
        var generator = SystemRandomNumberGenerator()
        let pieces = ["a", "b", " ", "\"", "\\", "\n", "\t", "\u{1}", "\u{1F}", "\u{7F}", "é", "東", "👍", "/"]
        for length in 0...40 {
            for _ in 0..<20 {
                let string = (0..<length).map { _ in pieces.randomElement(using: &generator)! }.joined()
                var out: [UInt8] = []
                JSONWriter.appendString(string, to: &out)
                #expect(out == reference(string), "\(string.debugDescription)")
                let back = try JSONSerialization.jsonObject(with: Data(out), options: [.fragmentsAllowed]) as? String
                #expect(back == string, "\(string.debugDescription)")
            }
        }
    }
}
