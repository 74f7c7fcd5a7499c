import Synchronization
import TallyCore

#if canImport(Glibc)
import Glibc
#endif

/// UUIDv7 event ids (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids sort roughly by time.
public enum EventID {
    /// A new UUIDv7 string (lowercase, hyphenated) for `milliseconds` since the epoch, with randomness from `generator`.
    public static func make(milliseconds: Int64, using generator: inout some RandomNumberGenerator) -> String {
        make(milliseconds: milliseconds, random: (generator.next(), generator.next()))
    }

    /// A new UUIDv7 string with randomness from the system's secure source.
    public static func make(milliseconds: Int64) -> String {
        make(milliseconds: milliseconds, random: secureRandomBits())
    }

    static func make(milliseconds: Int64, random: (UInt64, UInt64)) -> String {
        let ms = UInt64(max(0, milliseconds)) & 0xFFFF_FFFF_FFFF
        // 48 bits of time, version 7, 12 random bits; variant 10, 62 random bits.
        let high = ms << 16 | 0x7000 | (random.0 & 0x0FFF)
        let low = (random.1 & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return format(high: high, low: low)
    }

    /// 128 bits from the kernel's secure source. They are drawn 256 bytes at a time (16 ids) and handed out in turn,
    /// so that a call does not make a system call for its id: one `getrandom` per event was one of the collector's six
    /// system calls per call. Each bit is still the kernel's, used once.
    static func secureRandomBits() -> (UInt64, UInt64) {
        secureBits.withLock { $0.next() }
    }

    private static let secureBits = Mutex(SecureBits())

    /// Kernel randomness drawn ahead, in one `getentropy` (the most it gives at once).
    struct SecureBits {
        private var words = [UInt64](repeating: 0, count: 32)
        /// Words handed out so far; `words.count` when all are used.
        private var used = 32

        /// The next 128 unused bits, drawing more when all are used.
        mutating func next() -> (UInt64, UInt64) {
            if used == words.count {
                refill()
                used = 0
            }
            defer { used += 2 }
            return (words[used], words[used + 1])
        }

        private mutating func refill() {
            #if canImport(Glibc)
            // getentropy is getrandom(2) for up to 256 bytes, without its flags.
            if words.withUnsafeMutableBytes({ getentropy($0.baseAddress, $0.count) }) == 0 { return }
            #endif
            var generator = SystemRandomNumberGenerator()
            for index in words.indices { words[index] = generator.next() }
        }
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` from the UUID's two 64-bit halves.
    static func format(high: UInt64, low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 36) { out in
            Hex.digits.withUnsafeBufferPointer { table in
                var position = 0
                for nibble in 0..<32 {
                    if nibble == 8 || nibble == 12 || nibble == 16 || nibble == 20 {
                        out[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    let word = nibble < 16 ? high : low
                    out[position] = table[Int((word >> UInt64(60 - 4 * (nibble % 16))) & 0xF)]
                    position += 1
                }
            }
            return 36
        }
    }
}
