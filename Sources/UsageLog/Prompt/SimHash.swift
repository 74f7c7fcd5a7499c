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
        // byte each (`lanes`): a word's hash adds eight looked-up words at once instead of 64 bits one by one, and the
        // bytes are carried into the wide counters before they could overflow. Everything the loop touches is a
        // local, so that it stays in registers.
        var counts = [UInt32](repeating: 0, count: 64)
        var lanes = SIMD8<UInt64>.zero
        var pending = 0
        var words: UInt32 = 0
        func carry(_ lanes: SIMD8<UInt64>) {
            withUnsafeBytes(of: lanes) { bytes in
                // Lane i byte j counts bit 8i + j (little- or big-endian alike: `spread` writes in memory order).
                counts.withUnsafeMutableBufferPointer { counts in
                    for bit in 0..<64 { counts[bit] &+= UInt32(bytes[bit]) }
                }
            }
        }
        var text = text
        text.withUTF8 { utf8 in
            wordByte.withUnsafeBufferPointer { wordByte in
                spread.withUnsafeBufferPointer { spread in
                    var hash: UInt64 = fnvOffset
                    var inWord = false
                    var at = 0
                    while true {
                        // The word's byte (ASCII letters folded to lower case), or 0 between words and at the end.
                        let byte = at < utf8.count ? wordByte[Int(utf8[at])] : 0
                        at += 1
                        if byte != 0 {
                            hash = (hash ^ UInt64(byte)) &* fnvPrime
                            inWord = true
                            continue
                        }
                        if inWord {
                            // Lane i counts the bits of the hash's byte i.
                            let h = mix(hash)
                            lanes &+= SIMD8(
                                spread[Int(h & 0xFF)], spread[Int(h >> 8 & 0xFF)], spread[Int(h >> 16 & 0xFF)],
                                spread[Int(h >> 24 & 0xFF)], spread[Int(h >> 32 & 0xFF)], spread[Int(h >> 40 & 0xFF)],
                                spread[Int(h >> 48 & 0xFF)], spread[Int(h >> 56)])
                            words &+= 1
                            pending += 1
                            if pending == 255 {
                                carry(lanes)
                                lanes = .zero
                                pending = 0
                            }
                            hash = fnvOffset
                            inWord = false
                        }
                        if at > utf8.count { break }
                    }
                }
            }
        }
        carry(lanes)
        var result: UInt64 = 0
        for bit in 0..<64 where counts[bit] &* 2 > words { result |= 1 << UInt64(bit) }
        return result
    }

    /// For each byte, what it adds to a word's hash: ASCII letters (folded to lower case), digits and every byte of
    /// a non-ASCII character are word bytes; any other byte is 0, which ends a word.
    private static let wordByte: [UInt8] = (0...255).map { (byte: Int) -> UInt8 in
        switch byte {
        case 0x61...0x7A, 0x30...0x39, 0x80...0xFF: UInt8(byte)
        case 0x41...0x5A: UInt8(byte + 32)
        default: 0
        }
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
