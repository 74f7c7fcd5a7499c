/// An exact amount of money in the config's currency, held as an integer count of pico-units (10⁻¹² of the currency).
///
/// Int128 holds ±1.7 × 10²⁶ units, far beyond any organisation's spend, and 10⁻¹² is fine enough that every price per
/// million tokens with up to six decimal places is an exact whole number of pico-units per token. No binary floating
/// point is ever involved: amounts are parsed from and printed to decimal text. Rounding happens only in `formatted`.
///
/// ```swift
/// let limit = try Money(parsing: "5000.00")
/// limit.formatted(places: 2)          // "5000.00"
/// (limit * 3).formatted(places: 6)    // "15000.000000"
/// ```
public struct Money: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Pico-units per currency unit.
    public static let scale: Int128 = 1_000_000_000_000
    /// Decimal places `scale` represents.
    public static let scaleDigits = 12

    /// The amount in pico-units.
    public var picos: Int128

    public init(picos: Int128) {
        self.picos = picos
    }

    public static let zero = Money(picos: 0)

    /// Parses a plain decimal (`5000`, `5000.00`, `-0.25`): no exponent, no separators, at most 12 decimal places.
    public init(parsing text: some StringProtocol) throws(ValueError) {
        picos = try Decimal12.parse(text, maxPlaces: Money.scaleDigits, what: "amount")
    }

    /// Parses an amount as JSON price files write it (`0.01`, `1e-02`): plain or E notation, exact to 10⁻¹².
    public init(parsingScientific text: some StringProtocol) throws(ValueError) {
        picos = try Decimal12.parseScientific(text)
    }

    public static func < (lhs: Money, rhs: Money) -> Bool { lhs.picos < rhs.picos }
    public static func + (lhs: Money, rhs: Money) -> Money { Money(picos: lhs.picos + rhs.picos) }
    public static func - (lhs: Money, rhs: Money) -> Money { Money(picos: lhs.picos - rhs.picos) }
    public static func += (lhs: inout Money, rhs: Money) { lhs.picos += rhs.picos }
    public static func -= (lhs: inout Money, rhs: Money) { lhs.picos -= rhs.picos }
    public static func * (lhs: Money, rhs: Int128) -> Money { Money(picos: lhs.picos * rhs) }
    public static prefix func - (value: Money) -> Money { Money(picos: -value.picos) }

    /// The amount with `places` decimal places (0…12), rounded half away from zero; no separators, no symbol.
    public func formatted(places: Int) -> String {
        Decimal12.format(picos, places: places)
    }

    /// The exact amount with all 12 decimal places.
    public var description: String { formatted(places: Money.scaleDigits) }

    /// The exact amount with trailing zeros dropped, keeping at least two decimals (`0.013`, `12.50`): what CSV and
    /// JSON exports carry, so that figures add up to the cent and beyond.
    public var exact: String { trimmed(minimumPlaces: 2) }

    /// The amount rounded to `maximumPlaces` decimals, then with trailing zeros dropped down to `minimumPlaces`.
    public func trimmed(minimumPlaces: Int, maximumPlaces: Int = Money.scaleDigits) -> String {
        var text = Substring(formatted(places: maximumPlaces))
        while text.last == "0", let dot = text.firstIndex(of: "."), text.distance(from: dot, to: text.endIndex) > minimumPlaces + 1 {
            text = text.dropLast()
        }
        return String(text)
    }

    /// The amount as a sentence shows it: cents, or up to four decimals below one unit so that small spend does not
    /// read as zero (`12.50`, `0.0031`).
    public var brief: String {
        picos.magnitude < UInt128(Money.scale) ? trimmed(minimumPlaces: 2, maximumPlaces: 4) : formatted(places: 2)
    }

    /// Cents with thousands grouped, as tables and the HTML report show totals: `12,345.68`.
    public var grouped: String {
        let text = formatted(places: 2)
        let negative = text.hasPrefix("-")
        let body = negative ? text.dropFirst() : Substring(text)
        let parts = body.split(separator: ".", maxSplits: 1)
        let digits = parts[0]
        var whole = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { whole.append(",") }
            whole.append(c)
        }
        return (negative ? "-" : "") + whole + "." + (parts.count > 1 ? String(parts[1]) : "00")
    }

    /// Appends the exact amount as ASCII digits, with trailing zeros dropped down to `minimumPlaces` decimals: the
    /// allocation-free form of `trimmed(minimumPlaces:)` for writers of large files.
    public func appendExact(to out: inout [UInt8], minimumPlaces: Int) {
        var magnitude = picos.magnitude
        if picos < 0 { out.append(UInt8(ascii: "-")) }
        let whole = magnitude / UInt128(Money.scale)
        magnitude %= UInt128(Money.scale)
        JSONWriter.appendInteger(whole, to: &out)
        out.append(UInt8(ascii: "."))
        var digits = [UInt8](repeating: UInt8(ascii: "0"), count: Money.scaleDigits)
        var i = Money.scaleDigits - 1
        while magnitude > 0 {
            digits[i] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
            i -= 1
        }
        var end = Money.scaleDigits
        while end > minimumPlaces && digits[end - 1] == UInt8(ascii: "0") { end -= 1 }
        out.append(contentsOf: digits[..<end])
    }
}

/// A price per token, exact in pico-units of the currency.
///
/// Config prices are written per million tokens with at most six decimal places (`0.075` is 75,000 pico-units a token);
/// LiteLLM's price file writes them per token (`7.5e-08`), which must come to a whole number of pico-units.
public struct TokenPrice: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Pico-units of the currency per token.
    public var picosPerToken: Int128

    public init(picosPerToken: Int128) {
        self.picosPerToken = picosPerToken
    }

    /// Parses a price per million tokens (`3.00`, `0.075`): non-negative, at most six decimal places.
    public init(perMillion text: some StringProtocol) throws(ValueError) {
        let value = try Decimal12.parse(text, maxPlaces: 6, what: "price per million tokens")
        guard value >= 0 else { throw ValueError("a price cannot be negative") }
        // value is P·10¹² for a price P per million tokens; per token that is P·10⁻⁶ currency, or P·10⁶ pico-units,
        // a whole number because P has at most six decimal places.
        picosPerToken = value / 1_000_000
    }

    /// Parses a price per token as LiteLLM writes it (`7.5e-08`, `0.000003`, `0`): plain or E notation, exact to 10⁻¹².
    public init(perToken text: some StringProtocol) throws(ValueError) {
        picosPerToken = try Decimal12.parseScientific(text)
        guard picosPerToken >= 0 else { throw ValueError("a price cannot be negative") }
    }

    /// The cost of `tokens` tokens.
    public func cost(tokens: Int64) -> Money {
        Money(picos: picosPerToken * Int128(tokens))
    }

    /// The price per million tokens, exact (up to six decimal places).
    public var perMillion: String {
        Decimal12.format(picosPerToken * 1_000_000, places: 6)
    }

    public static func < (lhs: TokenPrice, rhs: TokenPrice) -> Bool { lhs.picosPerToken < rhs.picosPerToken }
    public var description: String { perMillion + "/M" }
}

/// A value in a config or data file that does not parse; the message says what was expected.
public struct ValueError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Fixed-point decimal text in units of 10⁻¹², shared by money, prices and ratios.
enum Decimal12 {
    /// Parses `[-]digits[.digits]` with at most `maxPlaces` fraction digits into units of 10⁻¹².
    static func parse(_ text: some StringProtocol, maxPlaces: Int, what: String) throws(ValueError) -> Int128 {
        var utf8 = Substring(text).utf8[...]
        var negative = false
        if utf8.first == UInt8(ascii: "-") {
            negative = true
            utf8 = utf8.dropFirst()
        }
        var whole: Int128 = 0
        var fraction: Int128 = 0
        var places = 0
        var sawDigit = false
        var inFraction = false
        for byte in utf8 {
            if byte == UInt8(ascii: ".") {
                guard !inFraction, sawDigit else { throw ValueError("'\(text)' is not a decimal \(what)") }
                inFraction = true
                continue
            }
            guard byte >= 0x30, byte <= 0x39 else {
                throw ValueError("'\(text)' is not a decimal \(what) (write digits with an optional '.', no exponent or separators)")
            }
            sawDigit = true
            let digit = Int128(byte - 0x30)
            if inFraction {
                places += 1
                guard places <= maxPlaces else { throw ValueError("'\(text)' has more than \(maxPlaces) decimal places") }
                fraction = fraction * 10 + digit
            } else {
                whole = whole * 10 + digit
                guard whole < 1_000_000_000_000_000 else { throw ValueError("'\(text)' is too large") }
            }
        }
        guard sawDigit, !(inFraction && places == 0) else { throw ValueError("'\(text)' is not a decimal \(what)") }
        for _ in places..<12 { fraction *= 10 }
        let value = whole * 1_000_000_000_000 + fraction
        return negative ? -value : value
    }

    /// Parses plain or E-notation decimal text (`7.5e-08`, `1E-6`, `0.0000025`) exactly into units of 10⁻¹².
    static func parseScientific(_ text: some StringProtocol) throws(ValueError) -> Int128 {
        let string = String(text)
        let parts = string.split(whereSeparator: { $0 == "e" || $0 == "E" })
        guard parts.count == 1 || parts.count == 2, string.last != "e", string.last != "E" else {
            throw ValueError("'\(string)' is not a number")
        }
        var exponent = 0
        if parts.count == 2 {
            guard let e = Int(parts[1]), abs(e) < 40 else { throw ValueError("'\(string)' has an unusable exponent") }
            exponent = e
        }
        var mantissa = Substring(parts[0])
        var negative = false
        if mantissa.first == "-" {
            negative = true
            mantissa = mantissa.dropFirst()
        }
        var digits: Int128 = 0
        var places = 0
        var inFraction = false
        var sawDigit = false
        for ch in mantissa.utf8 {
            if ch == UInt8(ascii: ".") {
                guard !inFraction else { throw ValueError("'\(string)' is not a number") }
                inFraction = true
                continue
            }
            guard ch >= 0x30, ch <= 0x39 else { throw ValueError("'\(string)' is not a number") }
            sawDigit = true
            guard digits < 100_000_000_000_000_000_000_000 else { throw ValueError("'\(string)' has too many digits") }
            digits = digits * 10 + Int128(ch - 0x30)
            if inFraction { places += 1 }
        }
        guard sawDigit else { throw ValueError("'\(string)' is not a number") }
        // value = digits × 10^(exponent − places); in 10⁻¹² units: digits × 10^(exponent − places + 12).
        let shift = exponent - places + 12
        var value = digits
        if shift >= 0 {
            for _ in 0..<shift {
                guard value < Int128.max / 10 else { throw ValueError("'\(string)' is too large") }
                value *= 10
            }
        } else {
            for _ in 0..<(-shift) {
                guard value % 10 == 0 else {
                    throw ValueError("'\(string)' is finer than 10⁻¹² and cannot be held exactly")
                }
                value /= 10
            }
        }
        return negative ? -value : value
    }

    /// Formats units of 10⁻¹² with `places` decimals, rounding half away from zero.
    static func format(_ value: Int128, places: Int) -> String {
        precondition((0...12).contains(places))
        var divisor: Int128 = 1
        for _ in 0..<(12 - places) { divisor *= 10 }
        var magnitude = value.magnitude
        let unsignedDivisor = UInt128(divisor)
        let remainder = magnitude % unsignedDivisor
        magnitude /= unsignedDivisor
        if remainder * 2 >= unsignedDivisor { magnitude += 1 }
        var digits = String(magnitude)
        if places > 0 {
            if digits.count <= places { digits = String(repeating: "0", count: places - digits.count + 1) + digits }
            digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -places))
        }
        return (value < 0 && magnitude > 0 ? "-" : "") + digits
    }
}

/// A non-negative ratio such as an alert threshold (`0.8` is 80%), exact to 10⁻¹².
public struct Ratio: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The ratio in units of 10⁻¹² (1.0 is 10¹²).
    public var units: Int128

    public init(units: Int128) { self.units = units }

    public init(parsing text: some StringProtocol) throws(ValueError) {
        units = try Decimal12.parse(text, maxPlaces: 12, what: "ratio")
    }

    public static let one = Ratio(units: 1_000_000_000_000)

    public static func < (lhs: Ratio, rhs: Ratio) -> Bool { lhs.units < rhs.units }

    /// As a percentage with `places` decimals, e.g. `80` or `103.5`.
    public func percent(places: Int = 0) -> String {
        Decimal12.format(units * 100, places: places)
    }

    public var description: String {
        var text = Decimal12.format(units, places: 12)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
