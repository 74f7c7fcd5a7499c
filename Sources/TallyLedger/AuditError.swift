/// A failure of the audit as a whole, with a stable code the CLI maps to an exit status.
public struct AuditError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String {
            case io, locked, data, usage, config
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A file or the database could not be read or written.
        public static let io = Code(.io)
        /// Another audit holds the ledger's lock.
        public static let locked = Code(.locked)
        /// The input was so bad that nothing could be ingested.
        public static let data = Code(.data)
        /// The command line asked for something impossible (a bad period, an unknown dimension).
        public static let usage = Code(.usage)
        /// The config and the ledger disagree in a way only the config can fix.
        public static let config = Code(.config)

        public var description: String { value.rawValue }
    }

    public var code: Code
    /// What went wrong and how to fix it.
    public var message: String
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { message }
}
