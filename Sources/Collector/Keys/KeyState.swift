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

    private let keysByHash: [String: Key]
    private let state = Mutex(ListState.unavailable(reason: "the revocation list has not been read yet"))

    public init(keys: [Key]) {
        var byHash: [String: Key] = [:]
        for key in keys { byHash[key.sha256] = key }
        keysByHash = byHash
    }

    /// Whether a revocation list is in force, so that /readyz can say the collector is ready; and what /readyz says.
    public var isReady: Bool { readiness.ready }

    public var readiness: (ready: Bool, detail: String) {
        state.withLock { s in
            switch s {
            case .loaded(_, let note?): (true, "ready; \(note)")
            case .loaded: (true, "ready")
            case .unavailable(let reason): (false, "not ready: \(reason); calls with Tally keys get 503 until a good list appears")
            }
        }
    }

    /// Whether a list has ever been put in force.
    public var hasList: Bool {
        state.withLock { if case .loaded = $0 { true } else { false } }
    }

    public func install(_ list: RevocationList, note: String? = nil) {
        state.withLock { $0 = .loaded(list, note: note) }
    }

    /// Refuses calls with configured keys until a list is installed. Only before any list is in force: a list once
    /// loaded stays until a better one replaces it.
    public func markUnavailable(reason: String) {
        state.withLock { s in
            if case .unavailable = s { s = .unavailable(reason: reason) }
        }
    }

    public var revocationCount: Int {
        state.withLock { if case .loaded(let list, _) = $0 { list.entries.count } else { 0 } }
    }

    /// Checks a secret at `now` (milliseconds since the epoch). Only its SHA-256 is compared.
    public func verdict(secret: String, now: Int64) -> Verdict {
        guard let key = keysByHash[Hex.sha256(secret)] else { return .unknown }
        let found: Result<RevocationList.Entry?, Failure> = state.withLock { s in
            switch s {
            case .loaded(let list, _): .success(list.entry(forKey: key.id, at: now))
            case .unavailable(let reason): .failure(Failure(reason: reason))
            }
        }
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
