import Synchronization
import TallyConfig
import TallyCore
import UsageLog

/// What the collector knows about a presented key: configured keys by secret hash, and the revocations in force.
public final class KeyState: Sendable {
    /// The verdict on a presented secret.
    public enum Verdict: Sendable {
        case ok(Key)
        case unknown
        case expired(Key)
        case revoked(Key, RevocationList.Entry)
    }

    private let keysByHash: [String: Key]
    private let revocations = Mutex(RevocationList())
    private let revocationsLoaded = Atomic<Bool>(false)

    public init(keys: [Key]) {
        var byHash: [String: Key] = [:]
        for key in keys { byHash[key.sha256] = key }
        keysByHash = byHash
    }

    /// Whether a revocation list has been loaded (or found absent), so that /readyz can say the collector is ready.
    public var isReady: Bool { revocationsLoaded.load(ordering: .acquiring) }

    public func install(_ list: RevocationList) {
        revocations.withLock { $0 = list }
        revocationsLoaded.store(true, ordering: .releasing)
    }

    public var revocationCount: Int { revocations.withLock { $0.entries.count } }

    /// Checks a secret at `now` (milliseconds since the epoch). Only its SHA-256 is compared.
    public func verdict(secret: String, now: Int64) -> Verdict {
        guard let key = keysByHash[Hex.sha256(secret)] else { return .unknown }
        if let entry = revocations.withLock({ $0.entry(forKey: key.id, at: now) }) { return .revoked(key, entry) }
        if let expires = key.expires, now >= expires { return .expired(key) }
        return .ok(key)
    }
}
