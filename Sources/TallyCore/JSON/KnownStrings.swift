/// The long member names that every request and answer of the providers repeats (`completion_tokens_details`), made
/// once, so that `JSONParser` hands out one of these instead of making a new `String` from the same bytes each call.
///
/// Only speed depends on it: a string that is not here is made as before, and one that is here equals what would have
/// been made. These names are longer than the 15 bytes a `String` holds inline, so each would otherwise cost an
/// allocation, a UTF-8 check and a release when the parsed value goes: about three times what looking it up costs.
package enum KnownStrings {
    /// The lengths looked up. A shorter string is held inline by `String` (no allocation, so nothing to save) and a
    /// longer one is never here.
    package static let lengths = 16...32

    /// A known string's bytes as the four eight-byte words at 0, 8, `min(16, count - 8)` and `count - 8`, which
    /// together cover every byte of a string of 16 to 32 bytes.
    private struct Words: Equatable {
        var a, b, c, d: UInt64

        @inline(__always)
        init(_ bytes: UnsafeRawPointer, count: Int) {
            a = bytes.loadUnaligned(as: UInt64.self)
            b = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            c = bytes.loadUnaligned(fromByteOffset: min(16, count - 8), as: UInt64.self)
            d = bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        }
    }

    /// The known strings of 16 to 32 bytes and their words, ordered by length; `firstOfLength[n - 16]` is where those
    /// of `n` bytes start, `firstOfLength[n - 15]` where they end.
    private static let table: (words: [Words], strings: [String], firstOfLength: [Int]) = {
        // Only plain ASCII can match: the parser looks up nothing else. A string that could never match is left out
        // rather than stopping the process (the tests read every entry back).
        let plain = Set(strings).filter { string in
            lengths.contains(string.utf8.count) && string.utf8.allSatisfy { $0 < 0x80 && $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C }
        }
        let sorted = plain.sorted { $0.utf8.count < $1.utf8.count }
        var words: [Words] = []
        var firstOfLength: [Int] = []
        for string in sorted {
            let bytes = Array(string.utf8)
            while firstOfLength.count <= bytes.count - lengths.lowerBound { firstOfLength.append(words.count) }
            words.append(bytes.withUnsafeBytes { Words($0.baseAddress!, count: bytes.count) })
        }
        while firstOfLength.count <= lengths.count { firstOfLength.append(words.count) }
        return (words, sorted, firstOfLength)
    }()

    /// The known string with exactly these bytes, if there is one (only strings of `lengths` are looked for).
    @inline(__always)
    package static func lookUp(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        guard lengths.contains(bytes.count) else { return nil }
        return find(bytes)
    }

    private static func find(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let wanted = Words(UnsafeRawPointer(bytes.baseAddress!), count: bytes.count)
        let table = table
        let length = bytes.count - lengths.lowerBound
        for i in table.firstOfLength[length]..<table.firstOfLength[length + 1] where table.words[i] == wanted {
            return table.strings[i]
        }
        return nil
    }

    /// Member names of 16 to 32 bytes in the OpenAI, Anthropic and Gemini requests and answers, usage above all, and
    /// the `object` of OpenAI's stream chunks. Adding one changes no result, only which strings are shared.
    package static let strings: [String] = [
        // OpenAI.
        "completion_tokens", "prompt_tokens_details", "completion_tokens_details", "reasoning_tokens",
        "accepted_prediction_tokens", "rejected_prediction_tokens", "input_tokens_details", "output_tokens_details",
        "max_completion_tokens", "max_output_tokens", "reasoning_effort", "parallel_tool_calls", "system_fingerprint",
        "chat.completion.chunk",
        // Anthropic.
        "cache_creation_input_tokens", "cache_read_input_tokens", "ephemeral_5m_input_tokens",
        "ephemeral_1h_input_tokens", "web_search_requests", "web_fetch_requests",
        // Gemini.
        "promptTokenCount", "candidatesTokenCount", "cachedContentTokenCount", "thoughtsTokenCount",
        "toolUsePromptTokenCount", "promptTokensDetails", "candidatesTokensDetails", "cacheTokensDetails",
        "generationConfig", "systemInstruction",
    ]
}
