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
        var parts: [String] = []
        for field in fields {
            if let value = request[field] { collect(value, into: &parts) }
        }
        return parts.joined(separator: "\n")
    }

    private static func collect(_ value: JSONValue, into parts: inout [String]) {
        switch value {
        case .string(let s):
            if !s.isEmpty { parts.append(s) }
        case .array(let elements):
            for element in elements { collect(element, into: &parts) }
        case .object(let members):
            for member in members.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) })
            where !structuralKeys.contains(member.key) {
                collect(member.value, into: &parts)
            }
        case .null, .bool, .number:
            break
        }
    }
}
