import Foundation
import TallyCore
import Yams

extension Config {
    /// Reads and checks the config file at `path`.
    ///
    /// - Parameter validatePattern: checks one `collector.redact` pattern, returning why it is unusable (or nil);
    ///   the CLI passes the collector's PCRE2 compiler so that `check-config` catches bad patterns.
    /// - Throws: `ConfigError` listing every problem with its file, line and field.
    public static func load(path: String, validatePattern: ((String) -> String?)? = nil) throws(ConfigError) -> Config {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw ConfigError(
                code: .unreadable,
                diagnostics: [
                    ConfigDiagnostic(file: path, line: nil, column: nil, field: "", message: "config file \(reason)")
                ])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(
                code: .unreadable,
                diagnostics: [
                    ConfigDiagnostic(file: path, line: nil, column: nil, field: "", message: "config file is not UTF-8 text")
                ])
        }
        var config = try parse(yaml: text, file: path, validatePattern: validatePattern)
        let folder = (path as NSString).deletingLastPathComponent
        config.baseDirectory = folder.isEmpty ? "." : folder
        return config
    }

    /// Parses and checks config text; `file` names it in diagnostics.
    public static func parse(
        yaml: String, file: String = "config", validatePattern: ((String) -> String?)? = nil
    ) throws(ConfigError) -> Config {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(code: .syntax, diagnostics: [ConfigReader.diagnostic(for: error, file: file)])
        } catch {
            throw ConfigError(
                code: .syntax,
                diagnostics: [
                    ConfigDiagnostic(file: file, line: nil, column: nil, field: "", message: "not valid YAML: \(error)")
                ])
        }
        var reader = ConfigReader(file: file, validatePattern: validatePattern)
        guard let root else {
            throw ConfigError(
                code: .invalid,
                diagnostics: [
                    ConfigDiagnostic(file: file, line: 1, column: nil, field: "", message: "the config file is empty")
                ])
        }
        let config = reader.readConfig(root)
        if !reader.diagnostics.isEmpty {
            let ordered = reader.diagnostics.enumerated().sorted { a, b in
                (a.element.line ?? 0, a.offset) < (b.element.line ?? 0, b.offset)
            }.map(\.element)
            throw ConfigError(code: .invalid, diagnostics: ordered)
        }
        return config
    }
}

/// Turns a YAML node tree into a `Config`, collecting every problem instead of stopping at the first.
struct ConfigReader {
    let file: String
    let validatePattern: ((String) -> String?)?
    var diagnostics: [ConfigDiagnostic] = []
    /// The node of each accepted list element (`teams#2`), for locating cross-reference problems.
    var marks: [String: Node] = [:]

    init(file: String, validatePattern: ((String) -> String?)?) {
        self.file = file
        self.validatePattern = validatePattern
    }

    static func diagnostic(for error: YamlError, file: String) -> ConfigDiagnostic {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            let what = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            return ConfigDiagnostic(file: file, line: mark.line, column: mark.column, field: "", message: "not valid YAML: \(what)")
        default:
            return ConfigDiagnostic(file: file, line: nil, column: nil, field: "", message: "not valid YAML: \(error)")
        }
    }

    mutating func report(_ node: Node?, _ field: String, _ message: String) {
        diagnostics.append(ConfigDiagnostic(file: file, line: node?.mark?.line, column: node?.mark?.column, field: field, message: message))
    }

    // MARK: Shapes

    /// The members of a mapping, after reporting duplicate and unknown keys.
    mutating func mapping(_ node: Node, _ field: String, allowed: [String]) -> [String: Node]? {
        guard case .mapping(let mapping) = node else {
            report(node, field, "must be a mapping (key: value pairs), got \(describe(node))")
            return nil
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                report(keyNode, field, "keys must be plain names")
                continue
            }
            let key = scalar.string
            let path = field.isEmpty ? key : "\(field).\(key)"
            if result[key] != nil {
                report(keyNode, path, "is given twice")
                continue
            }
            guard allowed.contains(key) else {
                let hint = closest(key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                report(keyNode, path, "unknown key\(hint); allowed here: \(allowed.joined(separator: ", "))")
                continue
            }
            result[key] = value
        }
        return result
    }

    mutating func sequence(_ node: Node, _ field: String) -> [Node]? {
        if isNull(node) { return [] }
        guard case .sequence(let sequence) = node else {
            report(node, field, "must be a list, got \(describe(node))")
            return nil
        }
        return Array(sequence)
    }

    func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    mutating func scalar(_ node: Node, _ field: String) -> String? {
        guard case .scalar(let scalar) = node else {
            report(node, field, "must be a single value, got \(describe(node))")
            return nil
        }
        if isNull(node) {
            report(node, field, "must not be empty")
            return nil
        }
        return scalar.string
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let s): return isNull(node) ? "nothing" : "'\(s.string)'"
        }
    }

    func closest(_ key: String, in allowed: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var current = [i + 1] + Array(repeating: 0, count: b.count)
                for (j, cb) in b.enumerated() {
                    current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1))
                }
                previous = current
            }
            return previous[b.count]
        }
        let scored = allowed.map { ($0, distance(Array(key), Array($0))) }.min { $0.1 < $1.1 }
        guard let (best, score) = scored, score <= max(2, key.count / 3) else { return nil }
        return best
    }

    // MARK: Typed values

    mutating func string(
        _ fields: [String: Node], _ key: String, _ parent: String, required: Bool = false, parentNode: Node? = nil
    ) -> String? {
        let path = parent.isEmpty ? key : "\(parent).\(key)"
        guard let node = fields[key] else {
            if required { report(parentNode, path, "is required") }
            return nil
        }
        return scalar(node, path)
    }

    mutating func bool(_ fields: [String: Node], _ key: String, _ parent: String) -> Bool? {
        guard let node = fields[key] else { return nil }
        let path = parent.isEmpty ? key : "\(parent).\(key)"
        guard let text = scalar(node, path) else { return nil }
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default:
            report(node, path, "must be true or false, got '\(text)'")
            return nil
        }
    }

    mutating func integer(_ fields: [String: Node], _ key: String, _ parent: String, range: ClosedRange<Int>) -> Int? {
        guard let node = fields[key] else { return nil }
        let path = parent.isEmpty ? key : "\(parent).\(key)"
        guard let text = scalar(node, path) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            report(node, path, "must be a whole number from \(range.lowerBound) to \(range.upperBound), got '\(text)'")
            return nil
        }
        return value
    }

    mutating func parsed<T>(_ fields: [String: Node], _ key: String, _ parent: String, _ parse: (String) throws(ValueError) -> T) -> T? {
        guard let node = fields[key] else { return nil }
        let path = parent.isEmpty ? key : "\(parent).\(key)"
        guard let text = scalar(node, path) else { return nil }
        do {
            return try parse(text)
        } catch {
            report(node, path, error.message)
            return nil
        }
    }

    mutating func duration(_ fields: [String: Node], _ key: String, _ parent: String, minimum: Int64 = 1) -> Int64? {
        guard let value = parsed(fields, key, parent, DurationText.milliseconds) else { return nil }
        guard value >= minimum else {
            report(fields[key], "\(parent).\(key)", "must be at least \(DurationText.format(milliseconds: minimum))")
            return nil
        }
        return value
    }

    mutating func oneOf<E: RawRepresentable & CaseIterable>(
        _ fields: [String: Node], _ key: String, _ parent: String, required: Bool = false, parentNode: Node? = nil
    ) -> E? where E.RawValue == String {
        guard let text = string(fields, key, parent, required: required, parentNode: parentNode) else { return nil }
        guard let value = E(rawValue: text) else {
            let choices = E.allCases.map(\.rawValue).joined(separator: " | ")
            report(fields[key], parent.isEmpty ? key : "\(parent).\(key)", "must be one of \(choices), got '\(text)'")
            return nil
        }
        return value
    }

    mutating func identifier(_ fields: [String: Node], _ key: String, _ parent: String, parentNode: Node?) -> String? {
        guard let text = string(fields, key, parent, required: true, parentNode: parentNode) else { return nil }
        let path = "\(parent).\(key)"
        if text == "unknown" {
            report(fields[key], path, "'unknown' is reserved for calls whose key is not in the config")
            return nil
        }
        let allowedBytes = text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
        guard allowedBytes, (1...128).contains(text.utf8.count), text.first != ".", text.first != "-" else {
            report(fields[key], path, "'\(text)' is not a usable id (1-128 letters, digits, '.', '_' or '-', not starting with '.' or '-')")
            return nil
        }
        return text
    }

    mutating func budget(_ node: Node?, _ path: String) -> Budget? {
        guard let node else { return nil }
        guard let fields = mapping(node, path, allowed: ["limit", "period", "hard"]) else { return nil }
        let limit = parsed(fields, "limit", path) { (text: String) throws(ValueError) in try Money(parsing: text) }
        if fields["limit"] == nil { report(node, "\(path).limit", "is required") }
        if let limit, limit <= .zero { report(fields["limit"], "\(path).limit", "must be more than 0, got \(limit.formatted(places: 2))") }
        let period: BudgetPeriod? = oneOf(fields, "period", path, required: true, parentNode: node)
        let hard = bool(fields, "hard", path) ?? true
        guard let limit, limit > .zero, let period else { return nil }
        return Budget(limit: limit, period: period, hard: hard)
    }
}
