import TallyCore
import TallyLedger
import UsageLog

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension ParsedSegment {
    /// The most tokens one call may report; more is refused as implausible, which also keeps every sum in 64 bits.
    static let maxTokens: Int64 = 10_000_000_000

    /// Reads and parses `job`'s lines. Only I/O failures throw; bad lines are quarantined.
    static func parse(_ job: SegmentJob) throws(FileIOError) -> ParsedSegment {
        var parsed = ParsedSegment(job: job)
        parsed.events.reserveCapacity(Int(min(job.size - job.offset, 256 << 20) / (job.file.isClosed ? 60 : 500)))
        do {
            parsed.summary = try SegmentReader.read(path: job.file.path, from: job.offset, firstLineNumber: job.firstLine) { number, line in
                parsed.accept(number: number, line: line)
            }
        } catch let error as FileIOError {
            if error.errno == ENOENT, !job.file.isClosed {
                parsed.vanished = true
                return parsed
            }
            throw error
        } catch {
            throw FileIOError(code: .io, message: "\(job.file.path): \(error)")
        }
        return parsed
    }

    /// Takes one line: through the fast path when it is in the writer's own layout, else through the full reader.
    mutating func accept(number: Int, line: UnsafeBufferPointer<UInt8>, fastPath: Bool = true) {
        if fastPath, let row = CanonicalLine.read(line, number: number, strings: &strings) {
            let biggest = max(row.tokens.input, row.tokens.output, row.tokens.cachedInput, row.tokens.cacheWrite, row.tokens.reasoning)
            if biggest <= Self.maxTokens {
                events.append(row)
                return
            }
        }
        let event: UsageEvent
        do {
            event = try UsageEvent(fastLine: line)
        } catch {
            quarantine(number: number, line: line, kind: error.kind.rawValue, reason: error.message)
            return
        }
        if let usage = event.usage,
            max(usage.input, usage.output, usage.cachedInput, usage.cacheWrite, usage.reasoning) > Self.maxTokens
                || max(usage.cacheWrite1h, usage.webSearchRequests) > ParsedEvent.maxExtraCount
        {
            quarantine(
                number: number, line: line, kind: LineError.Kind.invalidUsage.rawValue,
                reason: "a token count above \(Self.maxTokens) is not plausible for one call")
            return
        }
        var row = ParsedEvent()
        if let (high, low) = Self.uuid(event.id) {
            row.idHigh = high
            row.idLow = low
        } else {
            row.idText = strings.intern(event.id)
        }
        row.timestamp = event.timestamp
        row.line = Int32(clamping: number)
        row.collector = strings.intern(event.collector)
        row.key = strings.intern(event.key)
        row.provider = strings.intern(event.provider)
        row.model = strings.intern(event.model)
        if let user = event.user { row.endUser = strings.intern(user) }
        if !event.tags.isEmpty { row.tags = strings.intern(Self.canonicalTags(event.tags)) }
        if let error = event.error { row.error = strings.intern(error) }
        if let tier = event.serviceTier { row.serviceTier = strings.intern(tier) }
        row.usageEstimated = event.usageEstimated
        row.endpoint = UInt8(StoredEnums.endpoints.firstIndex(of: event.endpoint)!)
        row.outcome = UInt8(StoredEnums.outcomes.firstIndex(of: event.outcome)!)
        row.stream = event.stream
        row.status = Int16(event.status)
        if let usage = event.usage {
            row.hasUsage = true
            row.tokens = usage
        }
        row.latencyMs = event.latencyMs
        row.ttftMs = event.ttftMs
        row.promptHash = event.promptHash.map(Self.hashPrefix)
        row.promptSim = event.promptSim.map { Int64(bitPattern: $0) }
        row.promptChars = event.promptChars
        events.append(row)
    }

    mutating func quarantine(number: Int, line: UnsafeBufferPointer<UInt8>, kind: String, reason: String) {
        quarantined.append(
            QuarantinedLine(
                line: number, kind: kind, reason: reason, length: line.count,
                text: Array(line.prefix(SegmentReadSummary.tailKeep)), ts: QuarantinedLine.dataTime(line)))
    }

    /// The 16 bytes of a UUID written `8-4-4-4-12` in hex (either case), or nil.
    static func uuid(_ text: String) -> (UInt64, UInt64)? {
        var text = text
        return text.withUTF8 { $0.count == 36 ? CanonicalLine.uuid($0) : nil }
    }

    /// The first 64 bits of a hex prompt hash; a value that is not hex is folded with FNV-1a instead, so that equal
    /// values still match.
    static func hashPrefix(_ text: String) -> Int64 {
        var text = text
        return text.withUTF8 { CanonicalLine.hashPrefix($0) }
    }

    /// Tags as one canonical JSON object, keys sorted: the form the ledger stores a tag set in.
    static func canonicalTags(_ tags: [String: String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (i, key) in tags.keys.sorted().enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.appendString(tags[key]!, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
