import Synchronization
import TallyCore
import UsageLog

/// The calls whose answers are streaming, so that none ends without its log line: every one still running when a
/// shutdown's grace period runs out is logged from here with what was seen of it (`CallRecord.Ending`), and its
/// handler, when it finishes, logs nothing more. (A call drained past `drain_timeout` is ended by its own timer on its
/// event loop, `ProxyCall`.)
final class InFlightCalls: Sendable {
    /// One call's progress, updated by its handler as chunks pass and read at a shutdown's cut-off.
    final class Call: Sendable {
        struct State: Sendable {
            var record: CallRecord
            var ending = CallRecord.Ending()
            /// The call's line was written (by its handler or at the cut-off): nothing more is logged for it.
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
}
