import TallyConfig
import TallyCore
import UsageLog

/// Where a client's path goes: `/<provider>/<rest>` to that provider, `/v1/...` to the default provider.
///
/// A class: a call reads it many times and passes it on, and the provider it holds is a large value.
final class Route: Sendable {
    let provider: Provider
    /// What the collector does differently for this provider's kind.
    let adapter: any ProviderAdapter
    /// The path appended to the provider's `base_url` (starting with `/`), without the query.
    let upstreamPath: String
    /// The endpoint the path calls, and the model it names, as the provider's adapter reads it.
    let path: ClassifiedPath

    var endpoint: UsageEvent.Endpoint { path.endpoint }

    init?(path: String, config: Config) {
        if path.hasPrefix("/v1/") || path == "/v1" {
            guard let name = config.defaultProvider, let provider = config.provider(named: name) else { return nil }
            self.provider = provider
            upstreamPath = path
        } else {
            let trimmed = path.dropFirst()
            let name = trimmed.prefix { $0 != "/" }
            guard !name.isEmpty, let provider = config.provider(named: String(name)) else { return nil }
            self.provider = provider
            let rest = trimmed.dropFirst(name.count)
            upstreamPath = rest.isEmpty ? "/" : String(rest)
        }
        let adapter = ProviderAdapters.adapter(for: provider.kind)
        self.adapter = adapter
        self.path = adapter.classify(path: upstreamPath[...])
    }
}

/// A client's path made plain before it is classified and forwarded (`docs/collector.md`): percent-escapes decoded
/// once, and anything that could make the collector and the provider read different paths refused. So
/// `/openai/v1/chat/complet%69ons` is the chat completions endpoint (metered, with its usage asked for), while
/// `…/completions/.`, `…/x/../chat/completions`, `…%2Fcompletions` and `//` are not paths at all.
enum PathNormalizer {
    /// The characters a decoded segment may hold: RFC 3986's unreserved characters and the sub-delimiters, `:` and `@`.
    /// Anything else (a space, `%`, `?`, `#`, `\`, control characters, non-ASCII) would have to be re-encoded, and a
    /// provider's API paths never need it.
    static let allowed: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@".utf8 { table[Int(byte)] = true }
        return table
    }()

    /// The normalised path, or why the raw one is refused.
    static func normalize(_ raw: String) -> Result<String, PathError> {
        isPlain(raw) ? .success(raw) : decode(raw)
    }

    /// The normal form of any path, decoding it segment by segment.
    static func decode(_ raw: String) -> Result<String, PathError> {
        let bytes = Array(raw.utf8)
        guard bytes.first == UInt8(ascii: "/") else { return .failure(PathError("the path must start with '/'")) }
        if bytes.count == 1 { return .success("/") }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for segment in bytes.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard !segment.isEmpty else { return .failure(PathError("empty path segments ('//' or a trailing '/') are refused")) }
            var decoded: [UInt8] = []
            var i = segment.startIndex
            while i < segment.endIndex {
                let byte = segment[i]
                if byte == UInt8(ascii: "%") {
                    guard i + 2 < segment.endIndex, let high = hex(segment[i + 1]), let low = hex(segment[i + 2])
                    else { return .failure(PathError("a '%' in the path is not followed by two hex digits")) }
                    let value = high << 4 | low
                    if value == UInt8(ascii: "/") || value == UInt8(ascii: "\\") {
                        return .failure(PathError("encoded slashes in the path are refused"))
                    }
                    decoded.append(value)
                    i += 3
                } else {
                    decoded.append(byte)
                    i += 1
                }
            }
            guard decoded.allSatisfy({ allowed[Int($0)] }) else {
                return .failure(PathError("the path holds characters a provider's API path never does (after decoding)"))
            }
            if decoded == [UInt8(ascii: ".")] || decoded == [UInt8(ascii: "."), UInt8(ascii: ".")] {
                return .failure(PathError("'.' and '..' path segments are refused"))
            }
            out.append(UInt8(ascii: "/"))
            out.append(contentsOf: decoded)
        }
        return .success(String(decoding: out, as: UTF8.self))
    }

    /// Whether `raw` has nothing to decode or refuse (every path a well-behaved client sends): then it is its own
    /// normal form, and `normalize` returns it as it is.
    static func isPlain(_ raw: String) -> Bool {
        let utf8 = raw.utf8
        guard utf8.first == UInt8(ascii: "/"), utf8.count > 1 else { return false }
        var (length, dots) = (0, 0)
        // A segment ends: it must not be empty, "." or "..".
        func segmentIsPlain() -> Bool { length > 0 && !(length == dots && dots <= 2) }
        for byte in utf8.dropFirst() {
            if byte == UInt8(ascii: "/") {
                guard segmentIsPlain() else { return false }
                (length, dots) = (0, 0)
            } else {
                // `%` is not an allowed character: an escaped path takes the long way.
                guard allowed[Int(byte)] else { return false }
                length += 1
                if byte == UInt8(ascii: ".") { dots += 1 }
            }
        }
        return segmentIsPlain()
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    struct PathError: Error, Equatable {
        var message: String
        init(_ message: String) { self.message = message }
    }
}
