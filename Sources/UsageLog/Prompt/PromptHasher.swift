import Crypto

/// What the log keeps of a prompt instead of its text: a keyed hash for exact duplicates, a SimHash for near duplicates,
/// and its length.
public struct PromptFingerprint: Sendable, Equatable {
    /// Lowercase hex HMAC-SHA256 of the canonical prompt (64 characters).
    public var hash: String
    /// 64-bit SimHash of the normalised prompt text.
    public var sim: UInt64
    /// Unicode scalars in the normalised prompt text.
    public var chars: Int64
    /// The normalised prompt text itself, for a redacted preview; never logged as is.
    public var text: String
}

/// Hashes prompts with HMAC-SHA256 keyed by a deployment secret, so that equal requests hash equal across collectors
/// while nobody without the secret can confirm a guessed prompt.
///
/// The hashed bytes are the canonical JSON of an object holding the request's `model` and whichever prompt fields it has
/// (`PromptHasher.promptFields`): members sorted by key at every depth, no insignificant white space, strings minimally
/// escaped, numbers as written. Key order and spacing in the client's request therefore do not change the hash.
public struct PromptHasher: Sendable {
    /// The request fields that make up a prompt, across the OpenAI and Anthropic APIs.
    public static let promptFields: [String] = ["input", "instructions", "messages", "prompt", "system"]
    /// The request fields that make up a prompt in Google's Gemini API (`generateContent`).
    public static let geminiPromptFields: [String] = ["contents", "systemInstruction", "system_instruction"]

    private let key: SymmetricKey

    /// A hasher keyed by `secret`. The secret must be the same on every collector whose logs are compared.
    public init(secret: some Collection<UInt8>) {
        key = SymmetricKey(data: Array(secret))
    }

    /// The fingerprint of a parsed request body, or nil when it has none of the prompt fields.
    /// `fields` are the request's prompt fields, in the order they are hashed and read (the API's own list).
    public func fingerprint(model: String, request: JSONValue, fields: [String] = promptFields) -> PromptFingerprint? {
        guard let canonical = Self.canonicalForm(model: model, request: request, fields: fields) else { return nil }
        let text = PromptText.normalised(request: request, fields: fields)
        return PromptFingerprint(hash: hash(canonical: canonical), sim: SimHash.compute(text),
                                 chars: Int64(text.unicodeScalars.count), text: text)
    }

    /// The HMAC of already canonical bytes, as lowercase hex.
    public func hash(canonical: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: canonical, using: key)
        return Hex.encode(mac)
    }

    /// The canonical bytes that are hashed, or nil when the request has none of the prompt fields.
    public static func canonicalForm(model: String, request: JSONValue, fields: [String] = promptFields) -> [UInt8]? {
        var members: [(key: String, value: JSONValue)] = [("model", .string(model))]
        for field in fields {
            if let value = request[field] { members.append((field, value)) }
        }
        guard members.count > 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(256)
        JSONWriter.appendCanonical(.object(members), to: &out)
        return out
    }
}

/// Lowercase hexadecimal.
public enum Hex {
    @usableFromInline static let digits: [UInt8] = Array("0123456789abcdef".utf8)

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

    /// Lowercase hex of any byte sequence (a digest, an array).
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let array = Array(bytes)
        return array.withUnsafeBytes { encode($0) }
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
        encode(SHA256.hash(data: Array(text.utf8)))
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
