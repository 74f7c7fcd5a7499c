import CPCRE2

/// A PCRE2 pattern compiled (and JIT-compiled where the platform allows) for matching UTF-8 text.
///
/// The compiled code is immutable after `init` and each match call makes its own match data, which is what PCRE2
/// requires for sharing a pattern between threads; hence the unchecked `Sendable` over the C handle.
public final class PCRE2Pattern: @unchecked Sendable {
    /// Why a pattern did not compile: PCRE2's message and the offset in the pattern.
    public struct CompileError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var offset: Int
        public var description: String { "\(message) at offset \(offset)" }
    }

    private let code: OpaquePointer
    /// Whether PCRE2's JIT compiled the pattern (matching is then several times faster).
    public let isJITCompiled: Bool

    /// Compiles `pattern` with UTF mode on; throws with PCRE2's own message on failure.
    public init(_ pattern: String) throws(CompileError) {
        var errorCode: Int32 = 0
        var errorOffset: Int = 0
        let compiled = pattern.withCString { cString in
            cString.withMemoryRebound(to: UInt8.self, capacity: pattern.utf8.count + 1) { pointer in
                pcre2_compile_8(pointer, pattern.utf8.count, UInt32(PCRE2_UTF | PCRE2_UCP), &errorCode, &errorOffset, nil)
            }
        }
        guard let compiled else {
            throw CompileError(message: PCRE2Pattern.message(for: errorCode), offset: errorOffset)
        }
        code = compiled
        isJITCompiled = pcre2_jit_compile_8(compiled, UInt32(PCRE2_JIT_COMPLETE)) == 0
    }

    deinit {
        pcre2_code_free_8(code)
    }

    /// Why `pattern` cannot be used, or nil when it compiles.
    public static func problem(with pattern: String) -> String? {
        do {
            _ = try PCRE2Pattern(pattern)
            return nil
        } catch {
            return error.description
        }
    }

    /// Whether the pattern matches anywhere in `text`.
    public func matches(_ text: String) -> Bool {
        guard let matchData = pcre2_match_data_create_from_pattern_8(code, nil) else { return false }
        defer { pcre2_match_data_free_8(matchData) }
        var text = text
        return text.withUTF8 { utf8 in
            pcre2_match_8(code, utf8.baseAddress ?? UnsafePointer(bitPattern: 1)!, utf8.count, 0, 0, matchData, nil) >= 0
        }
    }

    /// Why a match could not be completed (PCRE2's match limit, the JIT stack, memory): the text may hold matches
    /// that were not found.
    public struct MatchError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// `text` with every match replaced by `replacement`, skipping matches `accept` turns down. Throws when matching
    /// fails part way (never "no more matches" for a search that could not finish).
    public func replacingMatches(
        in text: String, with replacement: String, where accept: ((Substring) -> Bool)? = nil
    ) throws(MatchError) -> String {
        guard let matchData = pcre2_match_data_create_from_pattern_8(code, nil) else { throw MatchError(message: "out of memory") }
        defer { pcre2_match_data_free_8(matchData) }
        var text = text
        let result = text.withUTF8 { utf8 -> Result<String, MatchError> in
            guard let base = utf8.baseAddress else { return .success("") }
            var out: [UInt8] = []
            var copied = 0
            var offset = 0
            while offset <= utf8.count {
                let status = pcre2_match_8(code, base, utf8.count, offset, 0, matchData, nil)
                if status == PCRE2_ERROR_NOMATCH { break }
                guard status >= 0 else { return .failure(MatchError(message: Self.message(for: status))) }
                let ovector = pcre2_get_ovector_pointer_8(matchData)!
                let start = ovector[0]
                let end = ovector[1]
                let matched = String(decoding: UnsafeBufferPointer(rebasing: utf8[start..<end]), as: UTF8.self)
                if end > start, accept?(Substring(matched)) ?? true {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[copied..<start]))
                    out.append(contentsOf: replacement.utf8)
                    copied = end
                }
                // Step past an empty match by one whole character, so UTF-8 stays valid.
                offset = end > start ? end : end + 1
                while offset < utf8.count, utf8[offset] & 0xC0 == 0x80 { offset += 1 }
            }
            if copied == 0 { return .success(String(decoding: utf8, as: UTF8.self)) }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[copied...]))
            return .success(String(decoding: out, as: UTF8.self))
        }
        return try result.get()
    }

    static func message(for errorCode: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let length = pcre2_get_error_message_8(errorCode, &buffer, buffer.count)
        guard length > 0 else { return "PCRE2 error \(errorCode)" }
        return String(decoding: buffer[0..<Int(length)], as: UTF8.self)
    }
}
