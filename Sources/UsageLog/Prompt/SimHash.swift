import TallyCore

/// 64-bit SimHash (Charikar) over the words of a text: texts that differ in a few words differ in a few bits.
///
/// Words are runs of ASCII letters and digits or of non-ASCII characters; ASCII letters are folded to lower case.
/// Each word is hashed with FNV-1a followed by the MurmurHash3 finaliser, and every occurrence votes on each bit.
public enum SimHash {
    /// The SimHash of `text`; 0 for a text without words.
    public static func compute(_ text: String) -> UInt64 {
        // Each word adds its hash's bits to 64 counters; a bit is set in the result when more than half of the
        // words set it, which is the same as a positive sum of ±1 votes. The counters are kept eight to a word, one
        // byte each (`lanes`): a word's hash adds eight looked-up words instead of 64 bits one by one, and the bytes
        // are carried into the wide counters before they could overflow.
        var counts = [UInt32](repeating: 0, count: 64)
        var lanes = SIMD8<UInt64>.zero
        var pending: UInt32 = 0
        var words: UInt32 = 0
        func carry() {
            withUnsafeBytes(of: lanes) { bytes in
                // Lane i byte j counts bit 8i + j (little- or big-endian alike: `spread` writes in memory order).
                for bit in 0..<64 { counts[bit] &+= UInt32(bytes[bit]) }
            }
            lanes = .zero
            pending = 0
        }
        var text = text
        text.withUTF8 { utf8 in
            var hash: UInt64 = fnvOffset
            var inWord = false
            func endWord() {
                guard inWord else { return }
                let h = mix(hash)
                spread.withUnsafeBufferPointer { spread in
                    // Lane i counts the bits of the hash's byte i.
                    for lane in 0..<8 { lanes[lane] &+= spread[Int(truncatingIfNeeded: h >> UInt64(8 * lane)) & 0xFF] }
                }
                words &+= 1
                pending &+= 1
                if pending == 255 { carry() }
                hash = fnvOffset
                inWord = false
            }
            for var byte in utf8 {
                let isWordByte: Bool
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), 0x80...0xFF:
                    isWordByte = true
                case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                    byte += 32
                    isWordByte = true
                default:
                    isWordByte = false
                }
                if isWordByte {
                    hash = (hash ^ UInt64(byte)) &* fnvPrime
                    inWord = true
                } else {
                    endWord()
                }
            }
            endWord()
        }
        carry()
        var result: UInt64 = 0
        for bit in 0..<64 where counts[bit] &* 2 > words { result |= 1 << UInt64(bit) }
        return result
    }

    /// For each byte value, eight one-byte counters in memory order: counter j is 1 when bit j of the value is set.
    private static let spread: [UInt64] = (0..<256).map { value in
        var bytes = [UInt8](repeating: 0, count: 8)
        for bit in 0..<8 where value & (1 << bit) != 0 { bytes[bit] = 1 }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }

    /// Bits in which two SimHashes differ.
    public static func distance(_ a: UInt64, _ b: UInt64) -> Int {
        (a ^ b).nonzeroBitCount
    }

    /// 16 lowercase hex digits, as written in the log's `prompt_sim`.
    public static func hex(_ value: UInt64) -> String {
        Hex.encode(words: value)
    }

    /// Reads 16 hex digits.
    public static func parseHex(_ text: String) -> UInt64? {
        guard text.utf8.count == 16, text.utf8.allSatisfy({ Hex.value($0) != nil }) else { return nil }
        return UInt64(text, radix: 16)
    }

    private static let fnvOffset: UInt64 = 0xcbf2_9ce4_8422_2325
    private static let fnvPrime: UInt64 = 0x0000_0100_0000_01b3

    /// MurmurHash3's 64-bit finaliser: spreads FNV's weak high bits.
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var h = value
        h ^= h >> 33
        h &*= 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h &*= 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return h
    }
}
