import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import TallyConfig
import TallyCore
import UsageLog

/// What every call through the proxy shares: the config, the keys, the log queue and the readers of requests.
///
/// Each call is a ``ProxyCall`` on its client connection's event loop; this holds what does not change per call.
final class Proxy: Sendable {
    let config: Config
    let keys: KeyState
    /// Where each provider's calls go, by provider name.
    let targets: [String: UpstreamTarget]
    let queue: EventQueue
    let metrics: CollectorMetrics
    let hasher: PromptHasher
    let redactor: Redactor
    /// Real provider keys by provider name, read from the environment at start.
    let providerKeys: [String: String]
    let logger: Logger
    /// The calls whose answers are streaming (their lines are written even if their end is never seen).
    let inFlight: InFlightCalls

    // A class, not a struct: every call and connection holds it, and copying a struct that holds the whole config
    // retained each of its arrays and strings once per call.
    init(
        config: Config, keys: KeyState, targets: [String: UpstreamTarget], queue: EventQueue, metrics: CollectorMetrics,
        hasher: PromptHasher, redactor: Redactor, providerKeys: [String: String], logger: Logger, inFlight: InFlightCalls
    ) {
        self.config = config
        self.keys = keys
        self.targets = targets
        self.queue = queue
        self.metrics = metrics
        self.hasher = hasher
        self.redactor = redactor
        self.providerKeys = providerKeys
        self.logger = logger
        self.inFlight = inFlight
    }

    /// Requests larger than this are refused with 413 (prompts with images can be large; this is far above them).
    static let maxRequestBytes = 64 << 20

    /// Hop-by-hop headers (RFC 9110 §7.6.1), which belong to one connection and are never forwarded.
    static let hopByHopHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
    ]
    /// Client headers never forwarded: hop-by-hop ones, the client's credentials (wherever any provider reads them),
    /// Tally's own, what the proxy sets, and `Expect` (the collector answers `100-continue` itself).
    static let droppedRequestHeaders = HeaderNames(
        hopByHopHeaders.union([
            "host", "content-length", "authorization", "x-tally-user", "x-tally-tags", "accept-encoding", "expect",
        ]).union(ProviderAdapters.keyHeaders).union(billingHeaders))
    /// Client headers that choose who pays or whose resources a call reaches: the organisation decides those, in the
    /// provider's `headers:`, never a key holder.
    static let billingHeaders: Set<String> = ["openai-organization", "openai-project", "x-goog-user-project"]
    /// Upstream headers not passed back: hop-by-hop ones, and the length, which the response body states itself.
    static let droppedResponseHeaders = HeaderNames(hopByHopHeaders.union(["content-length"]))

    /// `text.lowercased()`. Most header names and values come in lower case already: those (ASCII without capitals)
    /// are kept as they are, without making a new string (which was a good part of copying a call's headers).
    static func lowercased(_ text: String) -> String {
        text.utf8.contains { $0 >= 0x80 || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) } ? text.lowercased() : text
    }

    /// Bodies from this size on are read on NIO's thread pool rather than the connection's event loop.
    static let offLoopBodyBytes = 256 << 10

    /// A request body read: what the call needs before it is forwarded.
    struct BodyRead: Sendable {
        var json: JSONValue
        var reading: RequestReading
        /// Taken with the body when it was read off the loop; otherwise after the call is forwarded (`readPrompt`).
        var prompt: PromptRead?
    }

    /// What the log keeps of a prompt.
    struct PromptRead: Sendable {
        var fingerprint: PromptFingerprint?
        var preview: String?
    }

    /// Large bodies read on a thread that is no event loop's (what the tests check).
    static let largeBodiesReadOffLoop = Atomic<Int>(0)

    /// Parses a request body and reads what forwarding needs from it; nil when it is not a JSON object Tally can read.
    /// With `prompt`, also hashes and redacts its prompt (`readPrompt`).
    func readBody(_ bytes: [UInt8], route: Route, key: Key, prompt: Bool) -> BodyRead? {
        if bytes.count >= Self.offLoopBodyBytes, MultiThreadedEventLoopGroup.currentEventLoop == nil {
            Self.largeBodiesReadOffLoop.add(1, ordering: .relaxed)
        }
        guard let json = try? JSONValue.parse(bytes), case .object = json else { return nil }
        let reading = route.adapter.readRequest(json, bytes: bytes, path: route.path)
        return BodyRead(json: json, reading: reading, prompt: prompt ? readPrompt(json, reading: reading, key: key) : nil)
    }

    /// Hashes a request's prompt and, unless the key is private, keeps a redacted preview of it.
    func readPrompt(_ json: JSONValue, reading: RequestReading, key: Key) -> PromptRead {
        let fingerprint = hasher.fingerprint(model: reading.model ?? "", request: json, fields: reading.promptFields)
        var preview: String?
        if let fingerprint, !key.privacy, config.collector.previewChars > 0 {
            do {
                preview = try redactor.preview(of: fingerprint.text, characters: config.collector.previewChars)
            } catch {
                // Fails closed: a prompt redaction could not finish on keeps no preview.
                metrics.redactionFailures.add(1, ordering: .relaxed)
                logger.warning("redaction failed; no preview kept", metadata: ["error": "\(error)"])
            }
        }
        return PromptRead(fingerprint: fingerprint, preview: preview)
    }

    // MARK: Helpers

    /// Hands the call's event to the log writer, in the slot the call reserved.
    func log(_ event: UsageEvent) {
        metrics.record(event)
        queue.send(event)
    }

    /// The virtual key from `Authorization: Bearer …`, a header the provider's clients send keys in (`x-api-key`,
    /// `api-key`, `x-goog-api-key`), or a query parameter the provider's API takes keys in (Gemini's `key`).
    static func presentedKey(_ headers: HTTPHeaders, query: Substring?, adapter: any ProviderAdapter) -> String? {
        if let auth = headers.first(name: "authorization") {
            // "Bearer <token>", the scheme in any case, spaces before it and around the token ignored.
            let utf8 = auth.utf8
            if let start = utf8.firstIndex(where: { $0 != UInt8(ascii: " ") }),
                let space = utf8[start...].firstIndex(of: UInt8(ascii: " ")),
                utf8[start..<space].lazy.map({ $0 | 0x20 }).elementsEqual("bearer".utf8)
            {
                let token = trimmed(auth[utf8.index(after: space)...])
                if !token.isEmpty { return token }
            }
        }
        for name in adapter.keyHeaders {
            if let key = headers.first(name: name).map({ trimmed(Substring($0)) }), !key.isEmpty { return key }
        }
        return adapter.presentedKey(query: query)
    }

    /// `text` without leading and trailing spaces and tabs (Foundation's trimming is slow on the hot path).
    static func trimmed(_ text: Substring) -> String {
        let isBlank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        let utf8 = text.utf8
        guard let first = utf8.firstIndex(where: { !isBlank($0) }), let last = utf8.lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(decoding: utf8[first...last], as: UTF8.self)
    }

    /// Tags from `X-Tally-Tags: k=v,k2=v2` (at most 16, each part at most 128 characters).
    static func tags(_ headers: HTTPHeaders) -> [String: String] {
        guard let value = headers.first(name: "x-tally-tags") else { return [:] }
        var tags: [String: String] = [:]
        for pair in value.split(separator: ",").prefix(16) {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = trimmed(parts[0])
            let tagValue = trimmed(parts[1])
            guard !key.isEmpty else { continue }
            tags[String(key.prefix(128))] = String(tagValue.prefix(128))
        }
        return tags
    }
}

/// A set of header names (given in lower case), looked up in any case: `contains(name)` is
/// `names.contains(name.lowercased())`. An ASCII name, which every header name a client or provider sends is, is
/// compared byte by byte with the names of its length, without making a lower-case copy or hashing it.
struct HeaderNames: Sendable {
    let names: Set<String>
    /// The names' UTF-8 bytes, by their length.
    private let byLength: [[[UInt8]]]

    init(_ names: Set<String>) {
        precondition(names.allSatisfy { $0 == $0.lowercased() }, "header names are given in lower case")
        self.names = names
        var byLength = [[[UInt8]]](repeating: [], count: (names.map(\.utf8.count).max() ?? 0) + 1)
        for name in names { byLength[name.utf8.count].append(Array(name.utf8)) }
        self.byLength = byLength
    }

    func contains(_ name: String) -> Bool {
        if let found = name.utf8.withContiguousStorageIfAvailable(lookUp), let found { return found }
        return names.contains(name.lowercased())
    }

    /// Whether the ASCII name is one of the set's; nil when the name is not ASCII.
    private func lookUp(_ name: UnsafeBufferPointer<UInt8>) -> Bool? {
        var bits: UInt8 = 0
        for byte in name { bits |= byte }
        guard bits < 0x80 else { return nil }
        guard name.count < byLength.count else { return false }
        return byLength[name.count].contains { candidate in
            candidate.withUnsafeBufferPointer { lowercase in
                for i in 0..<name.count where lowercase[i] != name[i] {
                    let byte = name[i]
                    guard byte >= UInt8(ascii: "A"), byte <= UInt8(ascii: "Z"), lowercase[i] == byte | 0x20 else { return false }
                }
                return true
            }
        }
    }
}
