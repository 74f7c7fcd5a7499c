import Crypto
import Foundation

/// Lowercase hexadecimal.
public enum Hex {
    /// The sixteen digits, `0`–`9` then `a`–`f`.
    @usableFromInline package static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Lowercase hex of `bytes`.
    public static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            digits.withUnsafeBufferPointer { table in
                for (i, byte) in bytes.enumerated() {
                    out[2 * i] = table[Int(byte >> 4)]
                    out[2 * i + 1] = table[Int(byte & 0xF)]
                }
            }
            return bytes.count * 2
        }
    }

    /// Lowercase hex of any byte sequence (an array, a slice).
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let array = Array(bytes)
        return array.withUnsafeBytes { encode($0) }
    }

    /// Lowercase hex of a digest, read from its bytes (iterating it as a sequence costs more than hashing).
    public static func encode(_ digest: some Digest) -> String {
        digest.withUnsafeBytes { encode($0) }
    }

    /// Lowercase hex of a message authentication code (an HMAC), read from its bytes.
    public static func encode(_ code: some MessageAuthenticationCode) -> String {
        code.withUnsafeBytes { encode($0) }
    }

    /// Lowercase hex of 64-bit words, each written big-endian (most significant digit first).
    public static func encode(words: UInt64...) -> String {
        String(unsafeUninitializedCapacity: words.count * 16) { out in
            digits.withUnsafeBufferPointer { table in
                for (w, word) in words.enumerated() {
                    for i in 0..<16 { out[16 * w + i] = table[Int((word >> UInt64(60 - 4 * i)) & 0xF)] }
                }
            }
            return words.count * 16
        }
    }

    /// Lowercase hex SHA-256 of `text`'s UTF-8 bytes: how the config holds a key secret, and how the collector
    /// looks a presented one up.
    public static func sha256(_ text: String) -> String {
        var text = text
        return encode(text.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) })
    }

    /// Lowercase hex SHA-256 of `bytes` (a report file's checksum).
    public static func sha256(bytes: [UInt8]) -> String {
        encode(SHA256.hash(data: bytes))
    }

    /// Decodes hex (either case); nil when the text is not an even run of hex digits.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let high = value(utf8[i]), let low = value(utf8[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }

    /// The value of one hex digit (either case), or nil.
    @inlinable
    public static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
