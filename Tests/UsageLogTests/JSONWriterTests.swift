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
}
