import TallyCore

/// The text a person wrote into a request, pulled out of its JSON for similarity and previews.
public enum PromptText {
    /// Keys whose string values are structure, not prompt text (roles, ids, types, binary payloads).
    static let structuralKeys: Set<String> = [
        "role", "type", "id", "name", "tool_call_id", "cache_control", "media_type", "mime_type", "data",
        "image_url", "url", "file_id", "signature", "detail", "format",
    ]

    /// The string values under the request's prompt fields, in canonical key order, joined by newlines.
    public static func normalised(request: JSONValue, fields: [String] = PromptHasher.promptFields) -> String {
        // The parts are appended to one buffer as they are found (a newline before each but the first), and the
        // buffer becomes the string once: no string per part, no joining.
        var text: [UInt8] = []
        for field in fields {
            if let value = request[field] { collect(value, into: &text) }
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static func collect(_ value: JSONValue, into text: inout [UInt8]) {
        switch value {
        case .string(var s):
            guard !s.isEmpty else { return }
            if !text.isEmpty { text.append(UInt8(ascii: "\n")) }
            s.withUTF8 { text.append(contentsOf: $0) }
        case .array(let elements):
            for element in elements { collect(element, into: &text) }
        case .object(let members):
            // Members in the order of their keys' UTF-8 bytes, members with equal keys in document order. Most of a
            // prompt's objects (messages, content parts) have two members: those need no sorted copy.
            func member(_ i: Int) {
                if !structuralKeys.contains(members[i].key) { collect(members[i].value, into: &text) }
            }
            switch members.count {
            case 0:
                break
            case 1:
                member(0)
            case 2:
                if members[1].key.utf8.lexicographicallyPrecedes(members[0].key.utf8) {
                    member(1)
                    member(0)
                } else {
                    member(0)
                    member(1)
                }
            default:
                for member in members.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) })
                where !structuralKeys.contains(member.key) {
                    collect(member.value, into: &text)
                }
            }
        case .null, .bool, .number:
            break
        }
    }
}
