import TallyCore

/// A person's decision about a key (`tally keys revoke`, `tally keys restore`), kept in the ledger's `key_decisions`.
public struct KeyDecision: Sendable, Equatable {
    public enum Action: String, Sendable {
        /// Refuse the key until `until` (or until restored).
        case revoke
        /// Lift earlier manual revocations of the key, including a `manual` entry written into the list by hand.
        case restore
    }

    public var key: String
    public var action: Action
    public var reason: String
    public var until: Int64?
    public var at: Int64
    /// Who decided: the login name of whoever ran the command.
    public var by: String

    public init(key: String, action: Action, reason: String, until: Int64?, at: Int64, by: String) {
        self.key = key
        self.action = action
        self.reason = reason
        self.until = until
        self.at = at
        self.by = by
    }
}
