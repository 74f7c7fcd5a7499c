import Synchronization
import TallyCore
import UsageLog

/// The calls whose answers are streaming, so that none ends without its log line: one the client left whose upstream
/// falls silent past `drain_timeout`, and every one still running when a shutdown's grace period runs out, are logged
/// from here with what was seen of them (`CallRecord.Ending`), and their handlers, when they finish, log nothing more.
final class InFlightCalls: Sendable {
    /// One call's progress, updated by its handler as chunks pass and read by the reaper.
    final class Call: Sendable {
        struct State: Sendable {
            var record: CallRecord
            var ending = CallRecord.Ending()
            /// Set when the client has gone and the answer is being drained: the time the call is logged by at the latest.
            var drainDeadline: ContinuousClock.Instant?
            /// The call's line was written (by its handler or by the reaper): nothing more is logged for it.
            var logged = false
        }
        let state: Mutex<State>
        init(_ record: CallRecord) { state = Mutex(State(record: record)) }

        /// Claims the right to log the call: true once, for whoever asks first.
        func claim() -> Bool {
            state.withLock { s in
                if s.logged { return false }
                s.logged = true
                return true
            }
        }
    }

    private let calls = Mutex<[ObjectIdentifier: Call]>([:])
    private let log: @Sendable (UsageEvent) -> Void

    init(log: @escaping @Sendable (UsageEvent) -> Void) {
        self.log = log
    }

    func register(_ record: CallRecord) -> Call {
        let call = Call(record)
        calls.withLock { $0[ObjectIdentifier(call)] = call }
        return call
    }

    func remove(_ call: Call) {
        _ = calls.withLock { $0.removeValue(forKey: ObjectIdentifier(call)) }
    }

    var count: Int { calls.withLock { $0.count } }

    /// Logs the calls drained past their deadline (their upstream fell silent after the client left).
    func reapOverdue(now: ContinuousClock.Instant = .now) {
        let due = calls.withLock {
            $0.values.filter { call in call.state.withLock { ($0.drainDeadline.map { $0 <= now } ?? false) && !$0.logged } }
        }
        for call in due { end(call, cutOff: "client disconnected; drain_timeout passed before the usage came") }
    }

    /// Logs every call still running: the collector is stopping and will not see their end.
    func cutOffAll() {
        let all = calls.withLock { Array($0.values) }
        for call in all { end(call, cutOff: "cut off by the collector's shutdown") }
    }

    private func end(_ call: Call, cutOff: String) {
        guard call.claim() else { return }
        let event: UsageEvent = call.state.withLock { s in
            var record = s.record
            var ending = s.ending
            ending.clientGone = true
            ending.cutOff = cutOff
            return record.ended(ending, at: .now)
        }
        log(event)
    }

    /// Runs the reaper every `interval` until cancelled.
    func runReaper(interval: Duration = .milliseconds(500)) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            reapOverdue()
        }
    }
}
