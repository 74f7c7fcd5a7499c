import TallyConfig
import TallyCore
import UsageLog

/// Where a client's path goes: `/<provider>/<rest>` to that provider, `/v1/...` to the default provider.
struct Route: Sendable {
    var provider: Provider
    /// What the collector does differently for this provider's kind.
    var adapter: any ProviderAdapter
    /// The path appended to the provider's `base_url` (starting with `/`), without the query.
    var upstreamPath: String
    /// The endpoint the path calls, and the model it names, as the provider's adapter reads it.
    var path: ClassifiedPath

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
        adapter = ProviderAdapters.adapter(for: provider.kind)
        self.path = adapter.classify(path: upstreamPath[...])
    }
}
