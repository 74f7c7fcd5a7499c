import TallyConfig
import TallyCore
import UsageLog

#if canImport(Glibc)
import Glibc
#endif

/// Everything the collector does differently for one provider API shape.
///
/// A provider kind is one adapter file (`OpenAIAdapter.swift`, `AnthropicAdapter.swift`, …): which paths are which
/// endpoints, where clients put their key and where the real key goes, what the provider's errors look like, what the
/// log reads from a request, and how usage is read from a plain or a streamed response. The proxy asks the adapter and
/// never switches on the kind itself; `ProviderAdapters.adapter(for:)` is the one place that maps a kind to its adapter.
///
/// Adapters are plain values with no I/O, so they are tested byte by byte and do not depend on the HTTP stack.
protocol ProviderAdapter: Sendable {
    /// Lowercased request header names a client may carry its key in, besides `Authorization: Bearer`.
    var keyHeaders: [String] { get }

    /// A key the client put in the query string, for APIs that take one there; nil for the others.
    func presentedKey(query: Substring?) -> String?

    /// The endpoint a path after `/<provider>` calls, and the model the path names (Gemini's `models/{model}:…`,
    /// an Azure deployment), if any.
    func classify(path: Substring) -> ClassifiedPath

    /// The query string to send upstream (without `?`), from the client's: credentials in it are taken out.
    func upstreamQuery(_ query: Substring?) -> String?

    /// The header that carries the provider's real key upstream.
    func credential(realKey: String) -> (name: String, value: String)

    /// What the log reads from a request body that parsed as a JSON object, sent to the classified `path`.
    func readRequest(_ json: JSONValue, bytes: [UInt8], path: ClassifiedPath) -> RequestReading

    /// The status and body, in the provider's own error shape, for a call the collector answers itself.
    func refusal(_ reason: RefusalReason, message: String) -> (status: Int, body: [UInt8])

    /// A scanner for the members of a plain (not event-stream) response body that `readResponse` needs.
    func responseCapture(path: ClassifiedPath) -> TopLevelFieldCapture

    /// Usage, served model and tier from what `responseCapture` kept.
    func readResponse(_ capture: TopLevelFieldCapture) -> ResponseReading

    /// A reader for the events of a streamed (`text/event-stream`) response.
    func streamReader() -> any StreamEventReader

    /// Whether a call outside the metered endpoints is a harmless read that every key may make (listing models,
    /// counting tokens); `group` is the path's endpoint group (`endpointGroup(of:)`).
    func isHarmless(method: String, group: String, path: Substring) -> Bool

    /// The endpoint group of a path, as `allow:` names it (`EndpointGroups.group(of:)` unless the API nests a group
    /// under another, as Anthropic's `messages/batches`).
    func endpointGroup(of path: Substring) -> String
}

extension ProviderAdapter {
    func presentedKey(query: Substring?) -> String? { nil }
}

/// What the log reads from a provider's answer, plain or streamed.
struct ResponseReading: Sendable, Equatable {
    var usage: UsageEvent.Usage?
    /// The model the provider says it served.
    var model: String?
    /// The service tier the provider says it served the call on, exactly as reported.
    var serviceTier: String?
}

/// An adapter whose plain answers carry their usage and served model as top-level `usage` and `model` members (the
/// OpenAI and Anthropic APIs): it only says how to read the usage object and the served tier.
protocol UsageMemberAdapter: ProviderAdapter {
    /// The `usage` member in the log's terms.
    static func usage(_ usage: JSONValue) -> UsageEvent.Usage?
    /// The served tier: a top-level `service_tier` (OpenAI) or one inside `usage` (Anthropic).
    static func serviceTier(_ capture: TopLevelFieldCapture) -> String?
}

extension TopLevelFieldCapture {
    /// The top-level members that carry an answer's usage, model and served tier.
    static let usageMemberNames: Set<String> = ["usage", "model", "service_tier"]

    /// The scanner for an answer with those members. Made once and copied for each answer: making one costs more than
    /// reading a short answer with it.
    static let usageMembers = TopLevelFieldCapture(wanted: usageMemberNames)
}

extension UsageMemberAdapter {
    func responseCapture(path: ClassifiedPath) -> TopLevelFieldCapture { .usageMembers }

    func readResponse(_ capture: TopLevelFieldCapture) -> ResponseReading {
        ResponseReading(
            usage: capture.value("usage").flatMap(Self.usage), model: capture.value("model")?.stringValue,
            serviceTier: Self.serviceTier(capture))
    }
}

/// A client path as the adapter understands it.
struct ClassifiedPath: Sendable, Equatable {
    var endpoint: UsageEvent.Endpoint
    /// The model the path names, when the API puts it there rather than in the body.
    var model: String?
    /// Whether the path itself asks for a streamed answer (Gemini's `:streamGenerateContent`).
    var streams: Bool = false

    init(endpoint: UsageEvent.Endpoint, model: String? = nil, streams: Bool = false) {
        self.endpoint = endpoint
        self.model = model
        self.streams = streams
    }

    /// The endpoint by the path's last segments, as the OpenAI and Anthropic APIs name them (`…/chat/completions`,
    /// `…/messages`), trailing slashes ignored.
    init(lastSegmentsOf path: Substring) {
        // Compared as bytes: the path is plain ASCII by now (`PathNormalizer`), and comparing characters cost more
        // than the rest of routing together.
        var path = path.utf8[...]
        while path.last == UInt8(ascii: "/") { path = path.dropLast() }
        endpoint = Self.lastSegments.first { path.reversed().starts(with: $0.suffix.utf8.reversed()) }?.endpoint ?? .other
    }

    /// Longest first where one ends another (`/chat/completions` before `/completions`).
    private static let lastSegments: [(suffix: String, endpoint: UsageEvent.Endpoint)] = [
        ("/chat/completions", .chatCompletions), ("/completions", .completions), ("/responses", .responses),
        ("/embeddings", .embeddings), ("/messages", .messages),
    ]
}

/// What the log reads from a request body.
struct RequestReading: Sendable {
    /// The model asked for (the response's model replaces it when the response names one).
    var model: String?
    var stream: Bool
    /// The end user the client named in the body (OpenAI's `user`).
    var user: String?
    /// The request fields that make up the prompt, for the prompt hash (`PromptHasher.promptFields` unless the API
    /// names them otherwise).
    var promptFields: [String] = PromptHasher.promptFields
    /// The body to forward instead of the client's, when Tally asks for streamed usage on the client's behalf.
    var rewrittenBody: [UInt8]?
}

/// Why the collector answers a call itself instead of forwarding it.
enum RefusalReason: Sendable, Equatable {
    /// No key, or not a key this collector knows.
    case unknownKey
    /// The key is on the revocation list (or expired, as `.expired`).
    case revoked(RevocationList.Kind)
    /// No provider at the path.
    case unknownRoute
    /// The path is not one the collector forwards (encoded slashes, dot or empty segments, bad escapes).
    case badPath
    /// The request body is over the collector's limit.
    case requestTooLarge
    /// The request body did not arrive in full (the client left, or was slower than `request_read_timeout`).
    case requestNotRead
    /// The collector cannot write its usage log and its queue is full: the call is refused rather than forwarded
    /// unlogged.
    case logUnavailable
    /// A metered endpoint's body is not a JSON object the collector can read, so its usage could not be metered.
    case unreadableBody
    /// The collector has no real key for the provider.
    case noProviderKey
    /// The provider could not be reached.
    case upstreamUnreachable
    /// The endpoint is not metered and the config does not allow its group (`docs/collector.md`, "Endpoint policy").
    case endpointNotAllowed
    /// The collector cannot tell which keys are revoked (its list cannot be read and it has no good copy): it refuses
    /// rather than serve a key that may be revoked.
    case revocationsUnavailable
}

/// Maps a provider kind to its adapter: the one `switch` over provider kinds in the collector.
enum ProviderAdapters {
    static func adapter(for kind: ProviderKind) -> any ProviderAdapter {
        switch kind {
        case .openai: OpenAIAdapter()
        case .anthropic: AnthropicAdapter()
        case .gemini: GeminiAdapter()
        case .azure: AzureOpenAIAdapter()
        }
    }

    /// Every header name any adapter reads a key from: none of them is ever forwarded, whichever provider a call goes to.
    static let keyHeaders: Set<String> = Set(ProviderKind.allCases.flatMap { adapter(for: $0).keyHeaders })
}

/// Reads usage, the served model and errors from the events of one streamed response, one event's data at a time.
///
/// `SSEUsageParser` splits the stream into events; a reader only sees each event's `data`.
protocol StreamEventReader: Sendable {
    var usage: UsageEvent.Usage? { get }
    var model: String? { get }
    /// The service tier the provider says it served the call on.
    var serviceTier: String? { get }
    /// An error event seen in the stream after the response had started.
    var streamError: String? { get }
    /// Whether the stream reached its natural end.
    var completed: Bool { get }
    /// Whether `usage` is the provider's final count for the call (it may come before the end, or grow until it).
    var usageIsFinal: Bool { get }

    /// Reads one event's data; returns false when the event is Tally's own (asked for on the client's behalf) and is to
    /// be left out of what the client gets.
    mutating func read(data: [UInt8], dropInjectedUsageChunk: Bool) -> Bool
}

extension StreamEventReader {
    var serviceTier: String? { nil }
    var usageIsFinal: Bool { completed }
}

/// Plain byte searches over event data, so that the many content deltas of a stream need not be parsed.
enum ByteSearch {
    static func contains(_ bytes: UnsafeBufferPointer<UInt8>, _ needle: StaticString) -> Bool {
        find(bytes, needle, from: 0) != nil
    }

    /// Where `needle` first is in `bytes`, at `start` or after.
    static func find(_ bytes: UnsafeBufferPointer<UInt8>, _ needle: StaticString, from start: Int) -> Int? {
        let n = needle.utf8CodeUnitCount
        guard n > 0, start >= 0, let base = bytes.baseAddress else { return nil }
        let last = bytes.count - n
        let first = Int32(needle.utf8Start[0])
        var i = start
        while i <= last {
            // memchr finds the candidates a word at a time.
            guard let hit = memchr(base + i, first, last - i + 1) else { return nil }
            i = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            if matches(bytes, needle, at: i) { return i }
            i += 1
        }
        return nil
    }

    /// Whether `needle` is at `offset` in `bytes`.
    static func matches(_ bytes: UnsafeBufferPointer<UInt8>, _ needle: StaticString, at offset: Int) -> Bool {
        let n = needle.utf8CodeUnitCount
        guard offset + n <= bytes.count else { return false }
        for j in 0..<n where bytes[offset + j] != needle.utf8Start[j] { return false }
        return true
    }

    /// Whether `key` (with its quotes) is followed by an object, not `null` (chunks of a stream with `include_usage`
    /// carry `"usage":null` until the last).
    static func hasObject(_ bytes: UnsafeBufferPointer<UInt8>, after key: StaticString) -> Bool {
        var from = 0
        while let at = find(bytes, key, from: from) {
            if objectFollows(bytes, key, at: at) { return true }
            from = at + 1
        }
        return false
    }

    /// Whether `key` is at `offset` and an object follows it (after white space and a colon).
    static func objectFollows(_ bytes: UnsafeBufferPointer<UInt8>, _ key: StaticString, at offset: Int) -> Bool {
        guard matches(bytes, key, at: offset) else { return false }
        var i = offset + key.utf8CodeUnitCount
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x3A {
            i += 1
        }
        return i < bytes.count && bytes[i] == 0x7B
    }
}

extension JSONValue {
    /// The integer members of an object (the last of a repeated name wins); with `nested`, also those of its object
    /// members, named `outer.inner` (Anthropic's `cache_creation.ephemeral_1h_input_tokens`).
    func integerMembers(nested: Bool = false) -> [String: Int64] {
        guard case .object(let members) = self else { return [:] }
        var counts: [String: Int64] = [:]
        for member in members {
            if let n = member.value.int64Value {
                counts[member.key] = n
            } else if nested, case .object(let inner) = member.value {
                for innerMember in inner {
                    if let n = innerMember.value.int64Value { counts[member.key + "." + innerMember.key] = n }
                }
            }
        }
        return counts
    }
}
