import TallyConfig
import UsageLog

/// Reads usage and model from a server-sent-event stream as it passes, chunk by chunk.
///
/// Without `dropInjectedUsageChunk` every chunk is forwarded as it arrives (`feed` returns nil) and only parsed on the
/// side. With it (Tally asked OpenAI for `include_usage` on the client's behalf), bytes are forwarded event by event so
/// that the one usage-only chunk the client did not ask for can be left out; everything else goes through unchanged.
struct SSEUsageParser {
    let kind: ProviderKind
    let dropInjectedUsageChunk: Bool

    private(set) var usage: UsageEvent.Usage?
    private(set) var model: String?
    /// An error event seen in the stream (Anthropic `error`, OpenAI Responses `response.failed` / `error`).
    private(set) var streamError: String?
    /// Whether the stream reached its natural end (`[DONE]`, `message_stop`, `response.completed`).
    private(set) var completed = false

    private var pending: [UInt8] = []
    private var anthropicCounts: [String: Int64] = [:]

    init(kind: ProviderKind, dropInjectedUsageChunk: Bool) {
        self.kind = kind
        self.dropInjectedUsageChunk = dropInjectedUsageChunk
    }

    /// Takes the next chunk; returns the bytes to send the client instead of it, or nil to send it unchanged.
    mutating func feed(_ chunk: UnsafeRawBufferPointer) -> [UInt8]? {
        pending.append(contentsOf: chunk)
        var output: [UInt8] = []
        var eventStart = 0
        var lineStart = 0
        var index = 0
        while index < pending.count {
            if pending[index] == 0x0A {
                var lineEnd = index
                if lineEnd > lineStart, pending[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                if lineEnd == lineStart {
                    // A blank line ends an event.
                    let keep = process(pending[eventStart..<index + 1])
                    if dropInjectedUsageChunk, keep { output.append(contentsOf: pending[eventStart..<index + 1]) }
                    eventStart = index + 1
                }
                lineStart = index + 1
            }
            index += 1
        }
        pending.removeSubrange(0..<eventStart)
        return dropInjectedUsageChunk ? output : nil
    }

    /// The end of the stream: whatever is still held (an event without its closing blank line) goes out as is.
    mutating func finish() -> [UInt8] {
        defer { pending.removeAll() }
        if !pending.isEmpty { _ = process(pending[...]) }
        return dropInjectedUsageChunk ? pending : []
    }

    /// Reads one event; returns false when it is the injected usage chunk to leave out.
    private mutating func process(_ event: ArraySlice<UInt8>) -> Bool {
        var data: [UInt8] = []
        var sawData = false
        for line in event.split(separator: 0x0A, omittingEmptySubsequences: true) {
            var line = line
            if line.last == 0x0D { line = line.dropLast() }
            guard line.starts(with: "data:".utf8) else { continue }
            var payload = line.dropFirst(5)
            if payload.first == 0x20 { payload = payload.dropFirst() }
            if sawData { data.append(0x0A) }
            data.append(contentsOf: payload)
            sawData = true
        }
        guard sawData else { return true }
        if data.elementsEqual("[DONE]".utf8) {
            completed = true
            return true
        }
        guard mayCarryWhatIsRead(data), let json = try? JSONValue.parse(data), case .object = json else { return true }
        switch kind {
        case .openai: return processOpenAI(json)
        case .anthropic: processAnthropic(json); return true
        }
    }

    /// Whether an event's data may hold something the parser reads, so that the many content deltas of a stream are
    /// not parsed at all. Only a plain byte search: a false "yes" costs a parse, and a "no" is certain, since every key
    /// or type read appears literally (`"usage":{`, `"error"`, `"type"`, `"message_…"`).
    private func mayCarryWhatIsRead(_ data: [UInt8]) -> Bool {
        switch kind {
        case .openai:
            // The model comes with the first chunk; after that, only a usage object, an error or a Responses event matters.
            if model == nil { return true }
            return data.withUnsafeBufferPointer { bytes in
                Self.contains(bytes, "\"error\"") || Self.contains(bytes, "\"type\"") || Self.hasUsageObject(bytes)
            }
        case .anthropic:
            return data.withUnsafeBufferPointer { bytes in Self.contains(bytes, "\"message_") || Self.contains(bytes, "\"error\"") }
        }
    }

    private static func contains(_ bytes: UnsafeBufferPointer<UInt8>, _ needle: StaticString) -> Bool {
        find(bytes, needle, from: 0) != nil
    }

    private static func find(_ bytes: UnsafeBufferPointer<UInt8>, _ needle: StaticString, from start: Int) -> Int? {
        let n = needle.utf8CodeUnitCount
        guard n > 0, bytes.count >= n else { return nil }
        let first = needle.utf8Start[0]
        var i = start
        while i <= bytes.count - n {
            if bytes[i] == first {
                var j = 1
                while j < n, bytes[i + j] == needle.utf8Start[j] { j += 1 }
                if j == n { return i }
            }
            i += 1
        }
        return nil
    }

    /// A `"usage"` key whose value is an object (chunks of a stream with `include_usage` carry `"usage":null` until the last).
    private static func hasUsageObject(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var from = 0
        while let at = find(bytes, "\"usage\"", from: from) {
            var i = at + 7
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x3A { i += 1 }
            if i < bytes.count, bytes[i] == 0x7B { return true }
            from = at + 1
        }
        return false
    }

    private mutating func processOpenAI(_ json: JSONValue) -> Bool {
        if let type = json["type"]?.stringValue {
            // Responses API events.
            let response = json["response"]
            if let name = response?["model"]?.stringValue { model = name }
            switch type {
            case "response.completed", "response.incomplete", "response.failed":
                if let u = response?["usage"], let read = UsageReading.openAI(u) { usage = read }
                completed = true
                if type == "response.failed" {
                    streamError = response?["error"]?["message"]?.stringValue ?? "response failed"
                }
            case "error":
                streamError = json["message"]?.stringValue ?? json["error"]?["message"]?.stringValue ?? "error event"
            default:
                break
            }
            return true
        }
        // Chat completions and legacy completions chunks.
        if let name = json["model"]?.stringValue, !name.isEmpty { model = name }
        if let u = json["usage"], !u.isNull, let read = UsageReading.openAI(u) {
            usage = read
            if dropInjectedUsageChunk, case .array(let choices)? = json["choices"], choices.isEmpty {
                return false
            }
        }
        if let message = json["error"]?["message"]?.stringValue { streamError = message }
        return true
    }

    private mutating func processAnthropic(_ json: JSONValue) {
        switch json["type"]?.stringValue {
        case "message_start":
            let message = json["message"]
            if let name = message?["model"]?.stringValue { model = name }
            if let u = message?["usage"] { merge(u) }
        case "message_delta":
            // Counts here are cumulative: the last value wins, never a sum.
            if let u = json["usage"] { merge(u) }
        case "message_stop":
            completed = true
        case "error":
            streamError = json["error"]?["message"]?.stringValue ?? "error event"
        default:
            break
        }
    }

    private mutating func merge(_ usageObject: JSONValue) {
        guard case .object = usageObject else { return }
        anthropicCounts.merge(UsageReading.integerMembers(usageObject)) { _, latest in latest }
        usage = UsageReading.anthropic(counts: anthropicCounts)
    }
}
