import TallyConfig
import UsageLog

/// What the endpoint policy makes of a call (`docs/collector.md`, "Endpoint policy").
///
/// The collector forwards with the organisation's real provider key, so a path it forwards is a path every key holder
/// can use. By default it forwards only what it meters and a few harmless reads; anything else is refused unless the
/// provider's or the key's `allow:` names its group.
enum EndpointAccess: Sendable, Equatable {
    /// A call whose usage the collector reads (chat completions, messages, …): always forwarded.
    case metered
    /// A free read that reaches nobody's data (listing models, counting tokens): always forwarded.
    case harmless
    /// Anything else, by its group (`files`, `batches`, `images`, …): forwarded only where `allow:` names the group
    /// (or `all`), and then logged with outcome `unmetered`.
    case unmetered(group: String)

    /// Whether a provider's and a key's `allow:` lists let the call through.
    func isAllowed(provider: Set<String>, key: Set<String>) -> Bool {
        guard case .unmetered(let group) = self else { return true }
        return provider.contains(group) || key.contains(group) || provider.contains(Self.all) || key.contains(Self.all)
    }

    /// The `allow:` entry that lets every endpoint through.
    static let all = "all"
}

/// The group of an unmetered path, as `allow:` names it.
enum EndpointGroups {
    /// The first segment after the API's version and prefix segments (`v1`, `v1beta`, `openai`,
    /// `deployments/{name}`): `/v1/files/file-abc/content` is `files`, `/openai/deployments/d/images/generations` is
    /// `images`.
    static func group(of path: Substring) -> String {
        var segments = path.split(separator: "/")[...]
        while let first = segments.first, isVersion(first) || first == "openai" { segments = segments.dropFirst() }
        if segments.first == "deployments", segments.count > 2 { segments = segments.dropFirst(2) }
        return segments.first.map(String.init) ?? "root"
    }

    /// `v1`, `v2`, `v1beta`, `v1alpha2`, …
    static func isVersion(_ segment: Substring) -> Bool {
        let bytes = Array(segment.utf8)
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "v"), (0x30...0x39).contains(bytes[1]) else { return false }
        return bytes.dropFirst().allSatisfy { (0x30...0x39).contains($0) || (0x61...0x7A).contains($0) }
    }
}

extension ProviderAdapter {
    /// The policy's reading of a call: metered when the adapter meters its endpoint and it is a POST (a `GET` on
    /// `/v1/chat/completions` lists stored completions, which is not a call to meter); otherwise harmless or its group.
    func access(method: String, path: ClassifiedPath, upstreamPath: Substring) -> EndpointAccess {
        if path.endpoint != .other, method == "POST" { return .metered }
        let group = endpointGroup(of: upstreamPath)
        return isHarmless(method: method, group: group, path: upstreamPath) ? .harmless : .unmetered(group: group)
    }

    func endpointGroup(of path: Substring) -> String { EndpointGroups.group(of: path) }
}
