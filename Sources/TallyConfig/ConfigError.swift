import TallyCore

/// One problem in a config file, with where it is.
public struct ConfigDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// 1-based line, when known.
    public var line: Int?
    public var column: Int?
    /// The field, as a path from the top: `teams[0].budget.limit`.
    public var field: String
    public var message: String

    public init(file: String, line: Int?, column: Int?, field: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
    }

    /// `tally.yaml:12:5: teams[0].budget.limit: …`
    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let line, let column, line > 0 { location += ":\(column)" }
        return field.isEmpty ? "\(location): \(message)" : "\(location): \(field): \(message)"
    }
}

/// A config file that cannot be used, with every problem found in it.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }
        /// The file could not be read.
        public static let unreadable = Code("unreadable")
        /// The file is not YAML.
        public static let syntax = Code("syntax")
        /// The file is YAML but breaks the config's rules.
        public static let invalid = Code("invalid")
    }

    public var code: Code
    public var diagnostics: [ConfigDiagnostic]

    public init(code: Code, diagnostics: [ConfigDiagnostic]) {
        self.code = code
        self.diagnostics = diagnostics
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}
