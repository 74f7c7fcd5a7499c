import Foundation
import TallyConfig
import TallyCore
import UsageLog

/// One proxied call, from its request to its log event: a value-type state machine kept apart from the I/O.
///
/// A call is received, its key is checked, its request is read, it is forwarded, its answer streams, and it ends, or
/// it is refused at one of the first steps. Each step sets what it learns once; `ended` and `refused` give the one
/// event the log gets for the call.
struct CallRecord: Sendable {
    enum State: Sendable, Equatable {
        case received
        case requestRead
        case forwarded
        case ended
    }

    private(set) var state = State.received
    /// Forwarded to an endpoint the collector does not meter (the config allows its group): logged as `unmetered`.
    private var isUnmetered = false
    private var event: UsageEvent
    let started: ContinuousClock.Instant

    init(route: Route, collector: String, tags: [String: String], started: ContinuousClock.Instant, now: Int64) {
        self.started = started
        event = UsageEvent(
            id: EventID.make(milliseconds: now), timestamp: now, collector: collector, key: "unknown",
            provider: route.provider.name, endpoint: route.endpoint, model: route.path.model ?? "", status: 0, outcome: .ok,
            stream: false, usage: nil, tags: tags)
    }

    var provider: String { event.provider }

    /// The configured key the call presented.
    mutating func identified(keyID: String) {
        precondition(state == .received)
        event.key = keyID
    }

    /// The endpoint policy let the call through to an endpoint the collector does not meter.
    mutating func unmetered() {
        precondition(state == .received)
        isUnmetered = true
    }

    /// What the log keeps of the request body, but its prompt (`promptRead`).
    mutating func requestRead(_ reading: RequestReading) {
        precondition(state == .received)
        if let model = reading.model, !model.isEmpty { event.model = model }
        event.stream = reading.stream
        if let user = reading.user { event.user = user }
        state = .requestRead
    }

    /// What the log keeps of the prompt: its fingerprint and redacted preview. Taken once the request is read, and
    /// before the call ends; the proxy takes it while the provider works on the call, off the call's critical path.
    mutating func promptRead(_ fingerprint: PromptFingerprint?, preview: String?) {
        precondition(state == .requestRead || state == .forwarded)
        if let fingerprint {
            event.promptHash = fingerprint.hash
            event.promptSim = fingerprint.sim
            event.promptChars = fingerprint.chars
        }
        event.preview = preview
    }

    /// The end user named by the `X-Tally-User` header, which wins over one in the body.
    mutating func endUser(_ user: String) {
        event.user = user
    }

    /// The provider answered with `status`; `streamed` when the answer is an event stream.
    mutating func forwarded(status: Int, streamed: Bool) {
        precondition(state == .received || state == .requestRead)
        event.status = status
        if status >= 400 {
            event.outcome = .upstreamError
            event.error = "upstream returned \(status)"
        }
        if streamed { event.stream = true }
        state = .forwarded
    }

    /// The first bytes of a streamed answer arrived.
    mutating func firstByte(at instant: ContinuousClock.Instant) {
        precondition(state == .forwarded)
        if event.ttftMs == nil, event.stream { event.ttftMs = Int64((instant - started).milliseconds) }
    }

    /// How a forwarded call's answer went.
    struct Ending: Sendable {
        var read = ResponseReading()
        /// The usage read is the provider's final count (a plain body's `usage`, a stream's last report).
        var usageIsFinal = false
        var streamError: String?
        /// The client left before the end (or the collector cut the call off at shutdown).
        var clientGone = false
        var upstreamFailed = false
        /// Why the call was cut off by the collector, when it was: put in the event's `error`.
        var cutOff: String?
        /// What was seen of the answer, for an estimate when no final usage came: events with data (streamed) and
        /// body bytes.
        var dataEvents = 0
        var bodyBytes = 0
    }

    /// How a forwarded call's answer went; gives its log event. A metered call whose answer the provider started
    /// (status below 400) but that was cut off before its final usage came is logged with an estimate, marked
    /// `usage_estimated`
    /// (`estimate(_:)`): the provider bills it, so it is never logged as free.
    mutating func ended(_ ending: Ending, at instant: ContinuousClock.Instant) -> UsageEvent {
        precondition(state == .forwarded)
        let read = ending.read
        event.usage = read.usage
        if let servedModel = read.model, !servedModel.isEmpty { event.model = servedModel }
        event.serviceTier = read.serviceTier
        if let streamError = ending.streamError, event.outcome == .ok {
            event.outcome = .upstreamError
            event.error = String(streamError.prefix(200))
        }
        if ending.clientGone {
            event.outcome = .clientAbort
            event.error = ending.cutOff ?? "client disconnected"
        } else if ending.upstreamFailed, event.outcome == .ok {
            event.outcome = .upstreamError
            event.error = "upstream stream broke off"
        }
        if !ending.usageIsFinal, event.status < 400, event.endpoint != .other {
            event.usage = estimate(ending)
            event.usageEstimated = true
        }
        // Whatever else happened (the status and `error` say it), the call is one Tally could not meter.
        if isUnmetered { event.outcome = .unmetered }
        return end(at: instant)
    }

    /// A cut-off call's usage: what the provider reported so far, raised to what the request and the answer seen
    /// imply. Input: at least the prompt's characters / 4 (rounded up). Output: at least one token per streamed
    /// event with data, or the plain body's bytes / 4.
    func estimate(_ ending: Ending) -> UsageEvent.Usage {
        var usage = ending.read.usage ?? UsageEvent.Usage()
        let promptChars = event.promptChars ?? 0
        usage.input = max(usage.input, (promptChars + 3) / 4)
        let seen = event.stream ? Int64(ending.dataEvents) : Int64(ending.bodyBytes / 4)
        usage.output = max(usage.output, seen)
        return usage
    }

    /// The collector answered the call itself (a refusal, or the provider could not be reached); gives its log event.
    mutating func refused(
        _ outcome: UsageEvent.Outcome, status: Int, message: String, error: String? = nil,
        at instant: ContinuousClock.Instant
    ) -> UsageEvent {
        precondition(state == .received || state == .requestRead)
        event.outcome = outcome
        event.status = status
        event.error = String((error ?? message).prefix(200))
        return end(at: instant)
    }

    private mutating func end(at instant: ContinuousClock.Instant) -> UsageEvent {
        state = .ended
        event.latencyMs = Int64((instant - started).milliseconds)
        if event.model.isEmpty { event.model = "unknown" }
        return event
    }
}
