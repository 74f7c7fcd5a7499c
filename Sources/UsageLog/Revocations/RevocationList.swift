import Crypto
import TallyCore

/// The list of revoked keys the auditor writes and the collector enforces (`docs/revocations.md`).
///
/// ```
/// # tally-revocations v1
/// # sha256 <hex of SHA-256 over every entry line, each with its \n>
/// k-alice-dev<TAB>budget: team search spent 103% of its 5000.00 USD month budget for 2026-11<TAB>2026-12-01T00:00:00Z
/// ```
public struct RevocationList: Sendable, Equatable {
    /// One revoked key.
    public struct Entry: Sendable, Equatable {
        public var keyID: String
        /// Why, as `<kind>: <message>`; see `Kind`.
        public var reason: String
        /// When the revocation ends, milliseconds since the epoch; nil for until further notice.
        public var until: Int64?

        public init(keyID: String, reason: String, until: Int64?) {
            self.keyID = keyID
            self.reason = reason
            self.until = until
        }

        /// The kind of revocation, from the reason's first word (`budget: …`).
        public var kind: Kind {
            let word = reason.prefix { $0 != ":" }
            return Kind(rawValue: String(word)) ?? .manual
        }

        /// The reason without its kind prefix.
        public var message: String {
            guard let colon = reason.firstIndex(of: ":"), Kind(rawValue: String(reason[..<colon])) != nil else { return reason }
            return reason[reason.index(after: colon)...].trimmingPrefix(" ").description
        }
    }

    /// Why a key is revoked. Budget and runaway revocations are answered with 429 (SDKs stop retrying
    /// `insufficient_quota`), the others with 403.
    public enum Kind: String, Sendable, CaseIterable {
        case budget
        case runaway
        case expired
        case manual
    }

    public static let header = "# tally-revocations v1"

    public var entries: [Entry]

    public init(entries: [Entry] = []) {
        self.entries = entries
    }

    /// The entry for a key that is in force at `now`, if any.
    public func entry(forKey keyID: String, at now: Int64) -> Entry? {
        entries.first { $0.keyID == keyID && ($0.until ?? .max) > now }
    }

    /// The file's bytes: header, checksum, then one tab-separated line per entry.
    public func rendered(comments: [String] = []) -> [UInt8] {
        var body: [UInt8] = []
        for entry in entries {
            body.append(contentsOf: Self.clean(entry.keyID).utf8)
            body.append(0x09)
            body.append(contentsOf: Self.clean(entry.reason).utf8)
            body.append(0x09)
            body.append(contentsOf: (entry.until.map(Timestamp.format(milliseconds:)) ?? "-").utf8)
            body.append(0x0A)
        }
        var out = Array((Self.header + "\n").utf8)
        out.append(contentsOf: "# sha256 \(Hex.encode(SHA256.hash(data: body)))\n".utf8)
        for comment in comments { out.append(contentsOf: "# \(Self.clean(comment))\n".utf8) }
        out.append(contentsOf: body)
        return out
    }

    /// Tabs and line breaks would break the format; they become spaces.
    private static func clean(_ text: String) -> String {
        String(text.map { $0 == "\t" || $0 == "\n" || $0 == "\r" ? " " : $0 })
    }

    /// Why a revocation file was refused; the collector then keeps its previous list.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// Parses and checks a revocation file.
    public init(parsing bytes: [UInt8]) throws(ParseError) {
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        guard bytes.last == 0x0A || bytes.isEmpty else {
            throw ParseError(line: lines.count, message: "the last line does not end in a newline (a file cut short?)")
        }
        if lines.last?.isEmpty == true { lines.removeLast() }
        guard let first = lines.first, String(decoding: first, as: UTF8.self) == Self.header else {
            throw ParseError(line: 1, message: "the first line must be '\(Self.header)'")
        }
        var checksum: String?
        var entries: [Entry] = []
        var body: [UInt8] = []
        for (index, line) in lines.enumerated().dropFirst() {
            let number = index + 1
            if line.first == UInt8(ascii: "#") {
                guard entries.isEmpty else { throw ParseError(line: number, message: "comments must come before the entries") }
                let text = String(decoding: line, as: UTF8.self)
                if text.hasPrefix("# sha256 ") {
                    guard checksum == nil else { throw ParseError(line: number, message: "a second sha256 line") }
                    checksum = String(text.dropFirst(9))
                }
                continue
            }
            guard let text = String(validating: line, as: UTF8.self) else { throw ParseError(line: number, message: "not UTF-8") }
            let fields = text.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 3 else {
                throw ParseError(
                    line: number, message: "an entry needs three tab-separated fields (key_id, reason, until), found \(fields.count)")
            }
            guard !fields[0].isEmpty else { throw ParseError(line: number, message: "empty key_id") }
            var until: Int64?
            if fields[2] != "-" {
                guard let time = Timestamp.parse(fields[2]) else {
                    throw ParseError(line: number, message: "until must be an RFC 3339 time or '-', got '\(fields[2].prefix(40))'")
                }
                until = time
            }
            entries.append(Entry(keyID: String(fields[0]), reason: String(fields[1]), until: until))
            body.append(contentsOf: line)
            body.append(0x0A)
        }
        guard let checksum else { throw ParseError(line: 2, message: "no '# sha256 <hex>' line") }
        let actual = Hex.encode(SHA256.hash(data: body))
        guard checksum.lowercased() == actual else {
            throw ParseError(line: 2, message: "the sha256 line does not match the entries (a partial or edited file?)")
        }
        self.entries = entries
    }
}
