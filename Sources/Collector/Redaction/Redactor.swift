/// Removes personal data and secrets from prompt text before any of it is kept as a preview.
///
/// Built in, in this order: provider and cloud keys (`sk-ant-…`, `sk-…`, Tally `tk-…`, AWS access keys), bearer
/// tokens, e-mail addresses, IBANs (mod-97 checked), card numbers (Luhn checked), phone numbers; then the config's own
/// `collector.redact` patterns. Each match becomes a bracketed label such as `[EMAIL]`.
public struct Redactor: Sendable {
    struct Rule: Sendable {
        var pattern: PCRE2Pattern
        var label: String
        var check: (@Sendable (Substring) -> Bool)?
    }

    private let rules: [Rule]

    /// Compiles the built-in rules and `extraPatterns`; throws for a pattern that does not compile.
    public init(extraPatterns: [String] = []) throws(PCRE2Pattern.CompileError) {
        var rules: [Rule] = [
            Rule(pattern: try PCRE2Pattern(#"\bsk-ant-[A-Za-z0-9_\-]{10,}"#), label: "[KEY]"),
            Rule(pattern: try PCRE2Pattern(#"\bsk-(?:proj-)?[A-Za-z0-9_\-]{16,}"#), label: "[KEY]"),
            Rule(pattern: try PCRE2Pattern(#"\btk-[A-Za-z0-9]{16,}"#), label: "[KEY]"),
            Rule(pattern: try PCRE2Pattern(#"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"#), label: "[KEY]"),
            Rule(pattern: try PCRE2Pattern(#"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*"#), label: "[TOKEN]"),
            Rule(pattern: try PCRE2Pattern(#"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"#), label: "[EMAIL]"),
            Rule(
                pattern: try PCRE2Pattern(#"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"#), label: "[IBAN]",
                check: { Redactor.isIBAN($0) }),
            Rule(
                pattern: try PCRE2Pattern(#"(?<![\d-])(?:\d[ \-]?){12,18}\d(?![\d-])"#), label: "[CARD]",
                check: { Redactor.passesLuhn($0) }),
            Rule(
                pattern: try PCRE2Pattern(#"(?<![\w+])\+?\(?\d{1,4}\)?(?:[ .\-]?\(?\d{2,4}\)?){2,5}(?![\w])"#), label: "[PHONE]",
                check: { text in (7...15).contains(text.filter(\.isNumber).count) }),  // E.164: at most 15 digits
        ]
        for pattern in extraPatterns {
            rules.append(Rule(pattern: try PCRE2Pattern(pattern), label: "[REDACTED]"))
        }
        self.rules = rules
    }

    /// `text` with everything the rules match replaced by labels. Throws when a rule could not finish matching (PCRE2's
    /// match limit or JIT stack): the text may then hold what that rule is there to remove.
    public func redact(_ text: String) throws(PCRE2Pattern.MatchError) -> String {
        var current = text
        for rule in rules { current = try rule.pattern.replacingMatches(in: current, with: rule.label, where: rule.check) }
        return current
    }

    /// The first `characters` characters of `text` after redaction. The text is cut generously before redacting (a
    /// match is never shorter than its label's reach), so nothing past the cut can be half shown. Fails closed: when
    /// redaction cannot finish, it throws and no preview is kept.
    public func preview(of text: String, characters: Int) throws(PCRE2Pattern.MatchError) -> String? {
        guard characters > 0, !text.isEmpty else { return nil }
        let head = String(text.prefix(max(characters * 4, characters + 512)))
        return String(try redact(head).prefix(characters))
    }

    /// The Luhn checksum of a card number's digits.
    static func passesLuhn(_ text: Substring) -> Bool {
        let digits = text.compactMap(\.wholeNumberValue)
        guard (13...19).contains(digits.count) else { return false }
        var sum = 0
        for (i, digit) in digits.reversed().enumerated() {
            if i % 2 == 1 {
                let doubled = digit * 2
                sum += doubled > 9 ? doubled - 9 : doubled
            } else {
                sum += digit
            }
        }
        return sum % 10 == 0
    }

    /// ISO 13616 mod-97 check of an IBAN.
    static func isIBAN(_ text: Substring) -> Bool {
        let compact = text.filter { $0 != " " }
        guard (15...34).contains(compact.count) else { return false }
        let rearranged = compact.dropFirst(4) + compact.prefix(4)
        var remainder = 0
        for ch in rearranged {
            guard let value = ch.isNumber ? ch.wholeNumberValue : (ch.isUppercase && ch.isASCII ? Int(ch.asciiValue! - 55) : nil) else {
                return false
            }
            for digit in String(value) {
                remainder = (remainder * 10 + digit.wholeNumberValue!) % 97
            }
        }
        return remainder == 1
    }
}
