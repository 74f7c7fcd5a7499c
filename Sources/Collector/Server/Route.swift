import TallyConfig
import UsageLog

/// Where a client's path goes: `/<provider>/<rest>` to that provider, `/v1/...` to the default provider.
struct Route: Sendable, Equatable {
    var provider: Provider
    /// The path appended to the provider's `base_url` (starting with `/`), without the query.
    var upstreamPath: String
    var endpoint: UsageEvent.Endpoint

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
        endpoint = Self.endpoint(for: upstreamPath)
    }

    static func endpoint(for path: String) -> UsageEvent.Endpoint {
        var path = Substring(path)
        while path.hasSuffix("/") { path = path.dropLast() }
        if path.hasSuffix("/chat/completions") { return .chatCompletions }
        if path.hasSuffix("/completions") { return .completions }
        if path.hasSuffix("/responses") { return .responses }
        if path.hasSuffix("/embeddings") { return .embeddings }
        if path.hasSuffix("/messages") { return .messages }
        return .other
    }
}

/// Error bodies in each provider's own shape, so SDKs parse and surface them as they would the provider's.
enum ProviderError {
    static func body(kind: ProviderKind, type: String, code: String?, message: String) -> [UInt8] {
        var out: [UInt8] = []
        switch kind {
        case .openai:
            out.append(contentsOf: #"{"error":{"message":"#.utf8)
            JSONWriter.appendString(message, to: &out)
            out.append(contentsOf: #","type":"#.utf8)
            JSONWriter.appendString(type, to: &out)
            out.append(contentsOf: #","param":null,"code":"#.utf8)
            JSONWriter.appendOptionalString(code, to: &out)
            out.append(contentsOf: "}}".utf8)
        case .anthropic:
            out.append(contentsOf: #"{"type":"error","error":{"type":"#.utf8)
            JSONWriter.appendString(type, to: &out)
            out.append(contentsOf: #","message":"#.utf8)
            JSONWriter.appendString(message, to: &out)
            out.append(contentsOf: "}}".utf8)
        }
        return out
    }

    /// Status, type and code for each refusal, per provider.
    static func unknownKey(_ kind: ProviderKind) -> (Int, String, String?) {
        kind == .anthropic ? (401, "authentication_error", nil) : (401, "invalid_request_error", "invalid_api_key")
    }

    static func revoked(_ kind: ProviderKind, _ revocation: RevocationList.Kind) -> (Int, String, String?) {
        switch (revocation, kind) {
        case (.budget, .openai), (.runaway, .openai): return (429, "insufficient_quota", "insufficient_quota")
        case (.budget, .anthropic), (.runaway, .anthropic): return (429, "rate_limit_error", nil)
        case (_, .openai): return (403, "permission_error", revocation == .expired ? "key_expired" : "key_revoked")
        case (_, .anthropic): return (403, "permission_error", nil)
        }
    }
}
