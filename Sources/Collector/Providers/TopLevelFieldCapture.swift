import TallyCore
import UsageLog

/// Captures the raw JSON text of chosen top-level members of an object streamed in chunks, in bounded memory.
///
/// A plain provider response can be megabytes (embeddings), but usage and model are small top-level members.
/// Feeding every chunk through this scanner keeps only those members' bytes; nothing else is stored.
/// With `insideArray`, the body is an array of such objects (Gemini's JSON stream) and the last one's members win.
struct TopLevelFieldCapture {
    let wanted: Set<String>
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
        self.wanted = wanted
        self.limit = limit
        memberDepth = insideArray ? 2 : 1
        self.typeValue = typeValue.map { Array($0.utf8) }
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        if typeValue == nil {
            for byte in bytes { step(byte) }
        } else {
            for byte in bytes {
                countTypes(byte)
                step(byte)
            }
        }
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

    private mutating func step(_ byte: UInt8) {
        if awaitingValue {
            // Skip white space after ':' until the value starts.
            if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { return }
            awaitingValue = false
            capturing = currentKey.map(wanted.contains) ?? false
            valueBytes.removeAll(keepingCapacity: true)
        }
        if capturing {
            let endsValue = !inString && depth == memberDepth && (byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}"))
            if endsValue {
                if let key = currentKey, valueBytes.count <= limit { captured[key] = trimmed(valueBytes) }
                capturing = false
            } else if valueBytes.count <= limit {
                valueBytes.append(byte)
            }
        }
        if inString {
            if escaped {
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                inString = false
                if readingKey {
                    readingKey = false
                    currentKey = String(decoding: keyBytes, as: UTF8.self)
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
