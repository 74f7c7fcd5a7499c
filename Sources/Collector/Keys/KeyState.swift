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
        /// No revocation list can be trusted yet: the key cannot be checked, so it is not served.
        case unavailable(Key, reason: String)
    }

    /// The revocations in force, or why there are none to go by.
    enum ListState: Sendable {
        /// A list is in force; `note` says when it is not the file's current text (a last good copy).
        case loaded(RevocationList, note: String?)
        /// No list can be trusted: calls with configured keys are refused (fail closed) until one can.
        case unavailable(reason: String)
    }

    /// The configured keys by secret hash (replaced when SIGHUP reloads the config), and the list in force.
    private struct State {
        var keysByHash: [String: Key]
        var list: ListState
    }

    private let state: Mutex<State>

    public init(keys: [Key]) {
        state = Mutex(State(keysByHash: Self.byHash(keys), list: .unavailable(reason: "the revocation list has not been read yet")))
    }

    private static func byHash(_ keys: [Key]) -> [String: Key] {
        var byHash: [String: Key] = [:]
        for key in keys { byHash[key.sha256] = key }
        return byHash
    }

    /// Puts the config's keys (as reloaded on SIGHUP) in force: new keys work, removed ones are unknown from now on.
    public func replaceKeys(_ keys: [Key]) {
        let byHash = Self.byHash(keys)
        state.withLock { $0.keysByHash = byHash }
    }

    /// How many keys are configured.
    public var keyCount: Int { state.withLock { $0.keysByHash.count } }

    /// Whether a revocation list is in force, so that /readyz can say the collector is ready; and what /readyz says.
    public var isReady: Bool { readiness.ready }

    public var readiness: (ready: Bool, detail: String) {
        state.withLock { s in
            switch s.list {
            case .loaded(_, let note?): (true, "ready; \(note)")
            case .loaded: (true, "ready")
            case .unavailable(let reason): (false, "not ready: \(reason); calls with Tally keys get 503 until a good list appears")
            }
        }
    }

    /// Whether a list has ever been put in force.
    public var hasList: Bool {
        state.withLock { if case .loaded = $0.list { true } else { false } }
    }

    public func install(_ list: RevocationList, note: String? = nil) {
        state.withLock { $0.list = .loaded(list, note: note) }
    }

    /// Refuses calls with configured keys until a list is installed. Only before any list is in force: a list once
    /// loaded stays until a better one replaces it.
    public func markUnavailable(reason: String) {
        state.withLock { s in
            if case .unavailable = s.list { s.list = .unavailable(reason: reason) }
        }
    }

    public var revocationCount: Int {
        state.withLock { if case .loaded(let list, _) = $0.list { list.entries.count } else { 0 } }
    }

    /// Checks a secret at `now` (milliseconds since the epoch). Only its SHA-256 is compared.
    public func verdict(secret: String, now: Int64) -> Verdict {
        verdict(secretHash: Hex.sha256(secret), now: now)
    }

    /// The verdict on the key whose SHA-256 (lowercase hex) is `hash`: a call asks twice, and hashes its key once.
    public func verdict(secretHash hash: String, now: Int64) -> Verdict {
        let found: (Key, Result<RevocationList.Entry?, Failure>)? = state.withLock { s in
            guard let key = s.keysByHash[hash] else { return nil }
            switch s.list {
            case .loaded(let list, _): return (key, .success(list.entry(forKey: key.id, at: now)))
            case .unavailable(let reason): return (key, .failure(Failure(reason: reason)))
            }
        }
        guard let (key, found) = found else { return .unknown }
        switch found {
        case .failure(let failure): return .unavailable(key, reason: failure.reason)
        case .success(let entry?): return .revoked(key, entry)
        case .success(nil): break
        }
        if let expires = key.expires, now >= expires { return .expired(key) }
        return .ok(key)
    }

    private struct Failure: Error {
        var reason: String
    }
}
