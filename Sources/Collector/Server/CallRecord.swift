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

    /// What the log keeps of the request body.
    mutating func requestRead(_ reading: RequestReading, fingerprint: PromptFingerprint?, preview: String?) {
        precondition(state == .received)
        if let model = reading.model, !model.isEmpty { event.model = model }
        event.stream = reading.stream
        if let user = reading.user { event.user = user }
        if let fingerprint {
            event.promptHash = fingerprint.hash
            event.promptSim = fingerprint.sim
            event.promptChars = fingerprint.chars
        }
        event.preview = preview
        state = .requestRead
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

    /// How a forwarded call's answer went; gives its log event.
    mutating func ended(
        _ read: ResponseReading, streamError: String?, clientGone: Bool, upstreamFailed: Bool, at instant: ContinuousClock.Instant
    ) -> UsageEvent {
        precondition(state == .forwarded)
        event.usage = read.usage
        if let servedModel = read.model, !servedModel.isEmpty { event.model = servedModel }
        event.serviceTier = read.serviceTier
        if let streamError, event.outcome == .ok {
            event.outcome = .upstreamError
            event.error = String(streamError.prefix(200))
        }
        if clientGone {
            event.outcome = .clientAbort
            event.error = "client disconnected"
        } else if upstreamFailed, event.outcome == .ok {
            event.outcome = .upstreamError
            event.error = "upstream stream broke off"
        }
        return end(at: instant)
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
