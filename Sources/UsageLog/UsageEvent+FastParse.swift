import TallyCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A single-pass reader of v1 lines for the ingest: it scans the bytes once, matches the known field names on raw bytes
/// and builds no tree for scalar fields. It applies the same rules as `UsageEvent(jsonLine:)` (`UsageEvent(checking:)`);
/// tests compare both readers on fuzzed and hostile lines.
extension UsageEvent {
    public init(fastLine bytes: UnsafeBufferPointer<UInt8>) throws(LineError) {
        var scanner = LineScanner(bytes: bytes)
        self = try scanner.event()
    }
}

struct LineScanner {
    var parser: JSONParser

    init(bytes: UnsafeBufferPointer<UInt8>) {
        parser = JSONParser(bytes: bytes)
    }

    var bytes: UnsafeBufferPointer<UInt8> { parser.bytes }

    private func notJSON(_ message: String) -> LineError {
        LineError(.notJSON, "not JSON: \(message) at byte \(parser.index)")
    }

    mutating func event() throws(LineError) -> UsageEvent {
        parser.skipWhitespace()
        guard parser.index < bytes.count else { throw notJSON("unexpected end of input") }
        guard bytes[parser.index] == UInt8(ascii: "{") else {
            // Valid JSON that is not an object is refused as such; anything else as not JSON.
            do {
                _ = try parser.parseValue(depth: 0)
                parser.skipWhitespace()
                if parser.index != bytes.count {
                    throw JSONParseError(offset: parser.index, message: "unexpected text after the JSON value")
                }
            } catch {
                throw LineError(.notJSON, "not JSON: \(error)")
            }
            throw LineError(.notJSON, "the line is JSON but not an object")
        }
        parser.index += 1

        var fields = LineFields()
        try members { (field: LineFields.Field?, name: () -> String, scanner: inout LineScanner) throws(LineError) in
            fields.see(field, name: name)
            switch field {
            case let field? where field.isStructured:
                fields.set(field, value: try scanner.anyValue())
            case let field?:
                fields.set(field, scalar: try scanner.rawValue())
            case nil:
                _ = try scanner.anyValue()
            }
        }
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw notJSON("unexpected text after the JSON value") }
        return try UsageEvent(checking: fields)
    }

    /// Walks the members of the object whose `{` was just consumed, calling `body` with each member's field (nil when
    /// unknown) and a way to get its name as a String (made only when asked for).
    mutating func members(_ body: (LineFields.Field?, () -> String, inout LineScanner) throws(LineError) -> Void) throws(LineError) {
        parser.skipWhitespace()
        if parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: "}") {
            parser.index += 1
            return
        }
        while true {
            parser.skipWhitespace()
            guard parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: "\"") else { throw notJSON("expected a member name") }
            // Known names have no escapes: match their raw bytes; anything else goes through the full string parser.
            let nameStart = parser.index + 1
            var nameEnd = nameStart
            while nameEnd < bytes.count, bytes[nameEnd] != UInt8(ascii: "\""), bytes[nameEnd] != UInt8(ascii: "\\"), bytes[nameEnd] >= 0x20
            { nameEnd += 1 }
            let field: LineFields.Field?
            let name: String
            if nameEnd < bytes.count, bytes[nameEnd] == UInt8(ascii: "\""),
                let known = LineFields.Field.match(UnsafeBufferPointer(rebasing: bytes[nameStart..<nameEnd]))
            {
                field = known
                name = known.rawValue
                parser.index = nameEnd + 1
            } else {
                do { name = try parser.parseString() } catch { throw LineError(.notJSON, "not JSON: \(error)") }
                field = LineFields.Field(rawValue: name)
            }
            parser.skipWhitespace()
            guard parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: ":") else { throw notJSON("expected ':'") }
            parser.index += 1
            parser.skipWhitespace()
            try body(field, { name }, &self)
            parser.skipWhitespace()
            guard parser.index < bytes.count else { throw notJSON("unexpected end of input") }
            if bytes[parser.index] == UInt8(ascii: ",") {
                parser.index += 1
                continue
            }
            if bytes[parser.index] == UInt8(ascii: "}") {
                parser.index += 1
                return
            }
            throw notJSON("expected ',' or '}'")
        }
    }

    mutating func anyValue() throws(LineError) -> JSONValue {
        do { return try parser.parseValue(depth: 1) } catch { throw LineError(.notJSON, "not JSON: \(error)") }
    }

    /// A scalar field. Scalars build no tree anyway; an array or object in a scalar field is checked and set aside.
    mutating func rawValue() throws(LineError) -> LineFields.Raw {
        LineFields.Raw(try anyValue())
    }
}
