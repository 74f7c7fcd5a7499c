import TallyCore
import UsageLog

/// Captures the raw JSON text of chosen top-level members of an object streamed in chunks, in bounded memory.
///
/// A plain provider response can be megabytes (embeddings), but usage and model are small top-level members.
/// Feeding every chunk through this scanner keeps only those members' bytes; nothing else is stored.
/// With `insideArray`, the body is an array of such objects (Gemini's JSON stream) and the last one's members win.
struct TopLevelFieldCapture {
    /// The members to capture, with their names as bytes, to compare member names with before any is made a String.
    private let wantedNames: [(name: String, bytes: [UInt8])]
    /// Longest member value kept; longer ones are dropped (usage and model are tiny).
    let limit: Int
    /// The depth of the objects whose members are captured: 1 for an object body, 2 for an array of objects.
    private let memberDepth: Int
    private(set) var captured: [String: [UInt8]] = [:]

    private var depth = 0
    private var inString = false
    private var escaped = false
    /// At depth 1, the next string is a member name.
    private var expectingKey = false
    private var keyBytes: [UInt8] = []
    private var readingKey = false
    /// The member whose value comes next, when it is a wanted one.
    private var currentKey: String?
    /// Capturing the value of `currentKey`.
    private var capturing = false
    private var valueBytes: [UInt8] = []
    private var awaitingValue = false

    /// With a `typeValue`, the scanner counts `"type": <typeValue>` members at any depth (OpenAI Responses'
    /// `web_search_call` output items), without keeping the values they sit in.
    private let typeValue: [UInt8]?
    /// How many `"type": <typeValue>` members the body held.
    private(set) var typeCount = 0
    private var stringBytes: [UInt8] = []
    private var stringOverflow = false
    private var lastStringWasType = false
    private var valueFollowsType = false

    init(wanted: Set<String>, limit: Int = 64 * 1024, insideArray: Bool = false, countingType typeValue: String? = nil) {
        wantedNames = wanted.map { ($0, Array($0.utf8)) }
        captured.reserveCapacity(wanted.count)
        self.limit = limit
        memberDepth = insideArray ? 2 : 1
        self.typeValue = typeValue.map { Array($0.utf8) }
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        // A kept value is copied a run of bytes at a time: from where it starts (or this chunk does) to where it ends
        // (or this chunk does).
        var valueStart: Int? = capturing ? 0 : nil
        var at = 0
        while at < bytes.count {
            // Inside a string, only a quote or a backslash matters (most of an answer is its text): the bytes up to
            // the next one are skipped at once rather than stepped through. Counting types reads every string.
            if typeValue == nil, inString, !escaped {
                // Eight bytes at a time up to a word that may hold one (`JSONWriter.skipPlainWords`), then byte by
                // byte. A member name's bytes are kept as a run (the first 256 of them).
                let run = at
                var high: UInt64 = 0
                at = JSONWriter.skipPlainWords(bytes.assumingMemoryBound(to: UInt8.self), from: at, high: &high)
                while at < bytes.count, bytes[at] != UInt8(ascii: "\""), bytes[at] != UInt8(ascii: "\\") { at += 1 }
                if readingKey, keyBytes.count < 256 { keyBytes.append(contentsOf: bytes[run..<min(at, run + 256 - keyBytes.count)]) }
                if at == bytes.count { break }
            } else if typeValue == nil, depth > memberDepth, !inString, !awaitingValue {
                // Inside a member's value (most of an answer): only strings and brackets matter until it ends.
                while at < bytes.count, !Self.nests(bytes[at]) { at += 1 }
                if at == bytes.count { break }
            }
            let byte = bytes[at]
            if typeValue != nil { countTypes(byte) }
            switch step(byte) {
            case .none:
                break
            case .valueStarts:
                valueBytes.removeAll(keepingCapacity: true)
                valueStart = at
            case .valueEnds:
                keep(bytes[(valueStart ?? 0)..<at])
                valueStart = nil
                if let key = currentKey, valueBytes.count <= limit { captured[key] = trimmed(valueBytes) }
            case .emptyValue:
                if let key = currentKey { captured[key] = [] }
            }
            at += 1
        }
        if let valueStart { keep(bytes[valueStart...]) }
    }

    /// Whether `byte` can change the depth or start a string.
    @inline(__always) private static func nests(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"): true
        default: false
        }
    }

    /// Adds part of a kept value; a value longer than `limit` is not kept (a byte past the limit marks it).
    private mutating func keep(_ part: Slice<UnsafeRawBufferPointer>) {
        guard valueBytes.count <= limit else { return }
        valueBytes.append(contentsOf: part.prefix(limit + 1 - valueBytes.count))
    }

    /// Follows strings at any depth: a string closed just before `:` is a member name; a string value equal to
    /// `typeValue` right after the name `type` is counted. Runs before `step`, which owns `inString`.
    private mutating func countTypes(_ byte: UInt8) {
        if inString {
            if escaped || byte == UInt8(ascii: "\\") {
                stringOverflow = true  // an escaped string is never one of the plain names compared
            } else if byte == UInt8(ascii: "\"") {
                let text = stringOverflow ? nil : stringBytes
                if valueFollowsType, let text, text == typeValue! { typeCount += 1 }
                valueFollowsType = false
                lastStringWasType = text.map { $0.elementsEqual("type".utf8) } ?? false
            } else if stringBytes.count < 32 {
                stringBytes.append(byte)
            } else {
                stringOverflow = true
            }
            return
        }
        switch byte {
        case UInt8(ascii: "\""):
            stringBytes.removeAll(keepingCapacity: true)
            stringOverflow = false
        case UInt8(ascii: ":"):
            valueFollowsType = lastStringWasType
            lastStringWasType = false
        case 0x20, 0x09, 0x0A, 0x0D:
            break
        default:
            valueFollowsType = false
            lastStringWasType = false
        }
    }

    /// What a byte did to the value being kept.
    private enum Step {
        case none
        /// The byte is the first of a wanted member's value.
        case valueStarts
        /// The value ended before this byte (a `,` or `}` of the object whose member it is).
        case valueEnds
        /// A wanted member without a value (`"usage":,`): not JSON, kept as nothing.
        case emptyValue
    }

    private mutating func step(_ byte: UInt8) -> Step {
        var result = Step.none
        if awaitingValue {
            // Skip white space after ':' until the value starts.
            if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { return .none }
            awaitingValue = false
            capturing = currentKey != nil
            if capturing { result = .valueStarts }
        }
        if capturing, !inString, depth == memberDepth, byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") {
            capturing = false
            result = result == .valueStarts ? .emptyValue : .valueEnds
        }
        advance(byte)
        return result
    }

    /// Follows the JSON structure: strings (and which are member names), depth, and where members start.
    private mutating func advance(_ byte: UInt8) {
        if inString {
            if escaped {
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                inString = false
                if readingKey {
                    readingKey = false
                    currentKey = wantedNames.first { $0.bytes == keyBytes }?.name
                }
                return
            }
            if readingKey, keyBytes.count < 256 { keyBytes.append(byte) }
            return
        }
        switch byte {
        case UInt8(ascii: "\""):
            inString = true
            if depth == memberDepth && expectingKey {
                readingKey = true
                expectingKey = false
                keyBytes.removeAll(keepingCapacity: true)
            }
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            depth += 1
            if depth == memberDepth && byte == UInt8(ascii: "{") { expectingKey = true }
        case UInt8(ascii: "}"), UInt8(ascii: "]"):
            depth -= 1
        case UInt8(ascii: ","):
            if depth == memberDepth { expectingKey = true }
        case UInt8(ascii: ":"):
            if depth == memberDepth { awaitingValue = true }
        default:
            break
        }
    }

    private func trimmed(_ bytes: [UInt8]) -> [UInt8] {
        var end = bytes.count
        while end > 0, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[end - 1]) { end -= 1 }
        return Array(bytes[0..<end])
    }

    /// The captured member parsed as JSON, when it was captured and parses.
    func value(_ key: String) -> JSONValue? {
        guard let bytes = captured[key] else { return nil }
        return try? JSONValue.parse(bytes)
    }
}
