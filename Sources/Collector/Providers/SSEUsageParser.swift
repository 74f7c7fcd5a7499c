import TallyConfig
import TallyCore
import UsageLog

/// Splits a server-sent-event stream into events as it passes, chunk by chunk, and hands each event's data to the
/// provider's `StreamEventReader`.
///
/// Without `dropInjectedUsageChunk` every chunk is forwarded as it arrives (`feed` returns nil) and only parsed on the
/// side. With it (Tally asked for usage on the client's behalf), bytes are forwarded event by event so that the one
/// usage-only chunk the client did not ask for can be left out; everything else goes through unchanged.
struct SSEUsageParser {
    let dropInjectedUsageChunk: Bool
    private var reader: any StreamEventReader
    /// The bytes of the event not yet complete (a stream's events are small; a long one arrives in many chunks).
    private var pending: [UInt8] = []
    /// How much of `pending` has been looked at for line ends, and where its current line starts: each byte is scanned
    /// once, however many chunks an event arrives in.
    private var scanned = 0
    private var lineStart = 0
    /// Bytes looked at for line ends so far: the stream's size, whatever its chunking.
    private(set) var bytesScanned = 0

    var usage: UsageEvent.Usage? { reader.usage }
    var model: String? { reader.model }
    var serviceTier: String? { reader.serviceTier }
    /// An error event seen in the stream (Anthropic `error`, OpenAI Responses `response.failed` / `error`, …).
    var streamError: String? { reader.streamError }
    /// Whether the stream reached its natural end (`[DONE]`, `message_stop`, `response.completed`, …).
    var completed: Bool { reader.completed }
    /// Whether the usage read is the provider's final count for the call.
    var usageIsFinal: Bool { reader.usageIsFinal }
    /// Events with data seen: for an estimate of the output when a stream is cut off (about one token each).
    private(set) var dataEvents = 0

    init(reader: any StreamEventReader, dropInjectedUsageChunk: Bool) {
        self.reader = reader
        self.dropInjectedUsageChunk = dropInjectedUsageChunk
    }

    init(kind: ProviderKind, dropInjectedUsageChunk: Bool) {
        self.init(reader: ProviderAdapters.adapter(for: kind).streamReader(), dropInjectedUsageChunk: dropInjectedUsageChunk)
    }

    /// Takes the next chunk; returns the bytes to send the client instead of it, or nil to send it unchanged.
    mutating func feed(_ chunk: UnsafeRawBufferPointer) -> [UInt8]? {
        pending.append(contentsOf: chunk)
        var output: [UInt8] = []
        var eventStart = 0
        bytesScanned += pending.count - scanned
        var from = scanned
        while let index = pending[from...].firstIndex(of: 0x0A) {
            var lineEnd = index
            if lineEnd > lineStart, pending[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if lineEnd == lineStart {
                // A blank line ends an event.
                let keep = process(pending[eventStart..<index + 1])
                if dropInjectedUsageChunk, keep { output.append(contentsOf: pending[eventStart..<index + 1]) }
                eventStart = index + 1
            }
            lineStart = index + 1
            from = index + 1
        }
        pending.removeSubrange(0..<eventStart)
        lineStart -= eventStart
        scanned = pending.count
        return dropInjectedUsageChunk ? output : nil
    }

    /// The end of the stream: whatever is still held (an event without its closing blank line) goes out as is.
    mutating func finish() -> [UInt8] {
        defer {
            pending.removeAll()
            (scanned, lineStart) = (0, 0)
        }
        if !pending.isEmpty { _ = process(pending[...]) }
        return dropInjectedUsageChunk ? pending : []
    }

    /// Reads one event; returns false when it is the injected usage chunk to leave out.
    private mutating func process(_ event: ArraySlice<UInt8>) -> Bool {
        var data: [UInt8] = []
        var sawData = false
        var next = event.startIndex
        while next < event.endIndex {
            let end = event[next...].firstIndex(of: 0x0A) ?? event.endIndex
            var line = event[next..<end]
            next = end + 1
            if line.last == 0x0D { line = line.dropLast() }
            guard line.starts(with: "data:".utf8) else { continue }
            var payload = line.dropFirst(5)
            if payload.first == 0x20 { payload = payload.dropFirst() }
            if sawData { data.append(0x0A) }
            data.append(contentsOf: payload)
            sawData = true
        }
        guard sawData else { return true }
        dataEvents += 1
        return reader.read(data: data, dropInjectedUsageChunk: dropInjectedUsageChunk)
    }
}
