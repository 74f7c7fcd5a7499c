/// Appends JSON text to a byte buffer without Foundation, for the hot paths (log lines, canonical prompts).
public enum JSONWriter {

    /// Appends `string` as a JSON string literal: quotes, backslashes and control characters escaped, everything else as UTF-8.
    @inlinable
    public static func appendString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { utf8 in
            var runStart = 0
            var at = 0
            var high: UInt64 = 0
            while at < utf8.count {
                // Eight bytes at a time until some byte among them needs an escape; then those eight one by one.
                at = skipPlainWords(utf8, from: at, high: &high)
                let end = min(at + 8, utf8.count)
                for i in at..<end {
                    let byte = utf8[i]
                    if byte >= 0x20 && byte != 0x22 && byte != 0x5C { continue }
                    if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
                    appendEscape(byte, to: &out)
                    runStart = i + 1
                }
                at = end
            }
            if runStart < utf8.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count])) }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Whether any of the eight bytes in `word` is a quote, a backslash or a control character, the bytes a JSON
    /// string escapes: the classic tests for a byte below 0x20 and for a zero byte (in `word` XOR a repeated quote or
    /// backslash). Bytes of 0x80 and above never count. A borrow can mark a wrong byte, but only when some byte is one
    /// of those, so the answer is exact.
    @inlinable @inline(__always)
    package static func mayStopAString(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let control = (word &- ones &* 0x20) & ~word
        let quotes = (quote &- ones) & ~quote
        let backslashes = (backslash &- ones) & ~backslash
        return (control | quotes | backslashes) & 0x8080_8080_8080_8080 != 0
    }

    /// Where the first eight bytes from `start` on that may hold a quote, a backslash or a control character begin
    /// (`mayStopAString`), or where fewer than eight are left. The bits of the bytes passed over are ORed into
    /// `high`, so that a caller sees whether any of them was not ASCII.
    @inlinable @inline(__always)
    package static func skipPlainWords(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, high: inout UInt64) -> Int {
        guard let base = bytes.baseAddress else { return start }
        var at = start
        while at + 8 <= bytes.count {
            let word = UnsafeRawPointer(base + at).loadUnaligned(as: UInt64.self)
            if mayStopAString(word) { break }
            high |= word
            at += 8
        }
        return at
    }

    @usableFromInline
    static func appendEscape(_ byte: UInt8, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        switch byte {
        case 0x22: out.append(0x22)
        case 0x5C: out.append(0x5C)
        case 0x08: out.append(UInt8(ascii: "b"))
        case 0x0C: out.append(UInt8(ascii: "f"))
        case 0x0A: out.append(UInt8(ascii: "n"))
        case 0x0D: out.append(UInt8(ascii: "r"))
        case 0x09: out.append(UInt8(ascii: "t"))
        default:
            out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
            out.append(Hex.digits[Int(byte >> 4)])
            out.append(Hex.digits[Int(byte & 0xF)])
        }
    }

    /// Appends the bytes of a literal as they are (field names and punctuation).
    @inlinable
    public static func appendRaw(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// Appends `value` as a JSON string, or `null`.
    @inlinable
    public static func appendOptionalString(_ value: String?, to out: inout [UInt8]) {
        if let value { appendString(value, to: &out) } else { appendRaw("null", to: &out) }
    }

    /// Appends `value` as a JSON integer, or `null`.
    @inlinable
    public static func appendOptionalInteger(_ value: Int64?, to out: inout [UInt8]) {
        if let value { appendInteger(value, to: &out) } else { appendRaw("null", to: &out) }
    }

    /// Appends the decimal digits of `value`.
    @inlinable
    public static func appendInteger<T: BinaryInteger>(_ value: T, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        guard var magnitude = UInt64(exactly: value.magnitude) else {
            // Wider than 64 bits: digit by digit, then put in order.
            var magnitude = value.magnitude
            let start = out.count
            repeat {
                let (quotient, remainder) = magnitude.quotientAndRemainder(dividingBy: 10)
                out.append(UInt8(ascii: "0") + UInt8(remainder))
                magnitude = quotient
            } while magnitude > 0
            out[start...].reverse()
            return
        }
        // The digits are written from the end of a buffer on the stack (20 hold any UInt64), then appended at once.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var at = digits.count
            repeat {
                at -= 1
                digits[at] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[at...]))
        }
    }

    /// Appends `value` in the canonical form used for prompt hashing: object members sorted by key (UTF-8 byte order),
    /// no insignificant white space, strings minimally escaped, numbers as their literal text.
    public static func appendCanonical(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let literal): out.append(contentsOf: literal.utf8)
        case .string(let s): appendString(s, to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendCanonical(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            func member(_ i: Int, first: Bool) {
                if !first { out.append(UInt8(ascii: ",")) }
                appendString(members[i].key, to: &out)
                out.append(UInt8(ascii: ":"))
                appendCanonical(members[i].value, to: &out)
            }
            // Members sorted by the UTF-8 bytes of their keys; of duplicate keys (as Swift compares strings) the last
            // wins, as in `JSONValue.subscript`. Objects of one or two members, most of a prompt's, need no buffer.
            switch members.count {
            case 0:
                break
            case 1:
                member(0, first: true)
            case 2:
                let (a, b) = (members[0].key, members[1].key)
                if a == b {
                    member(1, first: true)
                } else if a.utf8.lexicographicallyPrecedes(b.utf8) {
                    member(0, first: true)
                    member(1, first: false)
                } else {
                    member(1, first: true)
                    member(0, first: false)
                }
            default:
                var latest: [String: Int] = [:]
                for (i, member) in members.enumerated() { latest[member.key] = i }
                let kept = latest.values.sorted { members[$0].key.utf8.lexicographicallyPrecedes(members[$1].key.utf8) }
                for (n, i) in kept.enumerated() { member(i, first: n == 0) }
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}
