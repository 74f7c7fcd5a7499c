import Crypto
import TallyCore

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

    /// HMAC state with the key already absorbed: each hash copies it (a value) instead of keying again.
    private let keyed: HMAC<SHA256>

    /// A hasher keyed by `secret`. The secret must be the same on every collector whose logs are compared.
    public init(secret: some Collection<UInt8>) {
        keyed = HMAC<SHA256>(key: SymmetricKey(data: Array(secret)))
    }

    /// The fingerprint of a parsed request body, or nil when it has none of the prompt fields.
    /// `fields` are the request's prompt fields, in the order they are hashed and read (the API's own list).
    public func fingerprint(model: String, request: JSONValue, fields: [String] = promptFields) -> PromptFingerprint? {
        guard let canonical = Self.canonicalForm(model: model, request: request, fields: fields) else { return nil }
        let text = PromptText.normalised(request: request, fields: fields)
        return PromptFingerprint(
            hash: hash(canonical: canonical), sim: SimHash.compute(text),
            chars: Int64(Self.scalarCount(text)), text: text)
    }

    /// The Unicode scalars in `text`, counted as the UTF-8 bytes that begin one: the same number as
    /// `text.unicodeScalars.count`, without decoding (that was 1% of the collector's CPU per call). Eight bytes are
    /// looked at at once: a continuation byte (`10xxxxxx`) is one whose top bit is set and whose next bit is not.
    static func scalarCount(_ text: String) -> Int {
        var text = text
        return text.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { return 0 }
            var continuations = 0
            var at = 0
            while at + 8 <= bytes.count {
                let word = UnsafeRawPointer(base + at).loadUnaligned(as: UInt64.self)
                continuations += (word & ~(word << 1) & 0x8080_8080_8080_8080).nonzeroBitCount
                at += 8
            }
            while at < bytes.count {
                if bytes[at] & 0xC0 == 0x80 { continuations += 1 }
                at += 1
            }
            return bytes.count - continuations
        }
    }

    /// The HMAC of already canonical bytes, as lowercase hex.
    public func hash(canonical: [UInt8]) -> String {
        var hmac = keyed
        hmac.update(data: canonical)
        return Hex.encode(hmac.finalize())
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
