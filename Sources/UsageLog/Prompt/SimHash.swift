import TallyCore

/// 64-bit SimHash (Charikar) over the words of a text: texts that differ in a few words differ in a few bits.
///
/// Words are runs of ASCII letters and digits or of non-ASCII characters; ASCII letters are folded to lower case.
/// Each word is hashed with FNV-1a followed by the MurmurHash3 finaliser, and every occurrence votes on each bit.
public enum SimHash {
    /// The SimHash of `text`; 0 for a text without words.
    public static func compute(_ text: String) -> UInt64 {
        // Each word adds its hash's bits to 64 counters; a bit is set in the result when more than half of the
        // words set it, which is the same as a positive sum of ±1 votes.
        var setCounts = [UInt32](repeating: 0, count: 64)
        var words: UInt32 = 0
        var text = text
        text.withUTF8 { utf8 in
            setCounts.withUnsafeMutableBufferPointer { counts in
                var hash: UInt64 = fnvOffset
                var inWord = false
                func endWord() {
                    guard inWord else { return }
                    let h = mix(hash)
                    for bit in 0..<64 { counts[bit] &+= UInt32(truncatingIfNeeded: (h >> UInt64(bit)) & 1) }
                    words &+= 1
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
        }
        var result: UInt64 = 0
        for bit in 0..<64 where setCounts[bit] &* 2 > words { result |= 1 << UInt64(bit) }
        return result
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
