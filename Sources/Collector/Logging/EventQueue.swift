import Synchronization
import TallyCore
import UsageLog

/// A bounded queue from request handlers to the one log writer, which never drops an event and never lets a call
/// through that it could not log.
///
/// Each call takes a slot (`reserve`) before it goes anywhere, and hands its event over (`send`) when it ends; a slot
/// is free again only once the writer has written the event. So when the log cannot be written (a full disk, a stuck
/// writer), the slots run out: new calls wait for one, at most `log_queue_wait`, and are then refused, before they
/// reach the provider. Calls already running always have their slot and never wait. Memory stays bounded by the
/// capacity, however long the log is stuck.
public final class EventQueue: Sendable {
    private struct State {
        var buffer: [UsageEvent] = []
        /// Slots held by calls that have not sent their event yet.
        var reserved = 0
        /// Events handed to the writer and not yet written.
        var inWriter = 0
        var waitingReservers: [(id: UInt64, granted: @Sendable (Bool) -> Void)] = []
        var nextWaiterID: UInt64 = 0
        var waitingReceiver: CheckedContinuation<[UsageEvent]?, Never>?
        var closed = false
        /// Why the writer cannot write the log, while it cannot.
        var writerProblem: String?

        var occupied: Int { buffer.count + reserved + inWriter }
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = 8192) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Events waiting for the writer or being written by it.
    public var depth: Int { state.withLock { $0.buffer.count + $0.inWriter } }

    /// Whether `close` was called (a shutdown is draining the queue).
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Slots held by calls in progress.
    public var reservedSlots: Int { state.withLock { $0.reserved } }

    /// Why the log cannot be written right now, or nil when it can.
    public var writerProblem: String? { state.withLock { $0.writerProblem } }

    /// What `reserve` got.
    public enum Reservation: Sendable, Equatable {
        /// A slot, at once.
        case slot
        /// A slot, after waiting for one: the caller may have given up meanwhile.
        case slotAfterWaiting
        /// No slot came within the wait.
        case none
    }

    /// Takes a slot for one call's event, waiting while none is free for at most `wait`. After `close` a slot is
    /// always given (a call finishing during shutdown must not lose its record).
    public func reserve(waitingAtMost wait: Duration) async -> Reservation {
        if tryReserve() { return .slot }
        guard wait > .zero else { return .none }
        let waited = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            guard let waiter = waitForSlot({ continuation.resume(returning: $0) }) else { return continuation.resume(returning: true) }
            Task {
                try? await Task.sleep(for: wait)
                self.expire(waiter)
            }
        }
        return waited ? .slotAfterWaiting : .none
    }

    /// Takes a slot if one is free (or the queue is closed), without waiting.
    public func tryReserve() -> Bool {
        state.withLock { s in
            guard s.closed || s.occupied < capacity else { return false }
            s.reserved += 1
            return true
        }
    }

    /// Waits for a slot without blocking: `granted(true)` runs once a slot is the caller's, `granted(false)` when
    /// `expire` comes first. Returns the waiter's ticket for `expire`, or nil when a slot was free at once (then
    /// `granted` is not called and the slot is the caller's). `granted` may run on any thread.
    public func waitForSlot(_ granted: @escaping @Sendable (Bool) -> Void) -> UInt64? {
        state.withLock { s in
            if s.closed || s.occupied < capacity {
                s.reserved += 1
                return nil
            }
            let id = s.nextWaiterID
            s.nextWaiterID += 1
            s.waitingReservers.append((id, granted))
            return id
        }
    }

    /// Gives back a slot that will not be used (the call's client left while it waited).
    public func release() {
        let granted: [@Sendable (Bool) -> Void] = state.withLock { s in
            s.reserved = max(0, s.reserved - 1)
            return Self.grant(&s, capacity: capacity)
        }
        for waiter in granted { waiter(true) }
    }

    /// A waiting reservation whose time is up gets false (unless a slot came first).
    public func expire(_ id: UInt64) {
        let expired: (@Sendable (Bool) -> Void)? = state.withLock { s in
            guard let at = s.waitingReservers.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waitingReservers.remove(at: at).granted
        }
        expired?(false)
    }

    /// Hands a call's event to the writer, using the slot the call reserved; never waits.
    public func send(_ event: UsageEvent) {
        let receiver: (CheckedContinuation<[UsageEvent]?, Never>, [UsageEvent])? = state.withLock { s in
            s.reserved = max(0, s.reserved - 1)
            guard let receiver = s.waitingReceiver else {
                s.buffer.append(event)
                return nil
            }
            s.waitingReceiver = nil
            var batch = s.buffer
            batch.append(event)
            s.buffer.removeAll()
            s.inWriter += batch.count
            return (receiver, batch)
        }
        if let (continuation, batch) = receiver { continuation.resume(returning: batch) }
    }

    /// The next batch of events (everything queued), waiting for one; nil once closed and empty. Their slots stay
    /// taken until the writer says they are `written`.
    public func nextBatch() async -> [UsageEvent]? {
        enum Outcome {
            case batch([UsageEvent])
            case end, wait
        }
        let outcome: Outcome = state.withLock { s in
            if !s.buffer.isEmpty {
                let batch = s.buffer
                s.buffer.removeAll(keepingCapacity: true)
                s.inWriter += batch.count
                return .batch(batch)
            }
            return s.closed ? .end : .wait
        }
        switch outcome {
        case .batch(let batch):
            return batch
        case .end:
            return nil
        case .wait:
            return await withCheckedContinuation { (continuation: CheckedContinuation<[UsageEvent]?, Never>) in
                let immediate: [UsageEvent]?? = state.withLock { s in
                    if !s.buffer.isEmpty {
                        let batch = s.buffer
                        s.buffer.removeAll(keepingCapacity: true)
                        s.inWriter += batch.count
                        return .some(batch)
                    }
                    if s.closed { return .some(nil) }
                    s.waitingReceiver = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        }
    }

    /// The writer wrote `count` events of its batches: their slots are free for new calls.
    public func written(_ count: Int) {
        let granted: [@Sendable (Bool) -> Void] = state.withLock { s in
            s.inWriter = max(0, s.inWriter - count)
            return Self.grant(&s, capacity: capacity)
        }
        for waiter in granted { waiter(true) }
    }

    /// Records whether the writer can write the log (`/readyz` fails while it cannot).
    public func writerFailed(_ problem: String?) {
        state.withLock { $0.writerProblem = problem }
    }

    /// Gives free slots to waiting calls, oldest first.
    private static func grant(_ s: inout State, capacity: Int) -> [@Sendable (Bool) -> Void] {
        var granted: [@Sendable (Bool) -> Void] = []
        while !s.waitingReservers.isEmpty, s.closed || s.occupied < capacity {
            granted.append(s.waitingReservers.removeFirst().granted)
            s.reserved += 1
        }
        return granted
    }

    /// Wakes the writer if it waits for events, so it can do periodic work; returns an empty batch to it.
    public func wakeWriter() {
        let receiver = state.withLock { s -> CheckedContinuation<[UsageEvent]?, Never>? in
            defer { s.waitingReceiver = nil }
            return s.waitingReceiver
        }
        receiver?.resume(returning: [])
    }

    /// No more waiting: the writer drains what is queued and then gets nil; calls waiting for a slot get one.
    public func close() {
        let (receiver, granted) = state.withLock { s -> (CheckedContinuation<[UsageEvent]?, Never>?, [@Sendable (Bool) -> Void]) in
            s.closed = true
            let receiver = s.waitingReceiver
            s.waitingReceiver = nil
            return (receiver, Self.grant(&s, capacity: capacity))
        }
        for waiter in granted { waiter(true) }
        if let receiver {
            let rest: [UsageEvent]? = state.withLock { s in
                let batch = s.buffer
                s.buffer.removeAll()
                s.inWriter += batch.count
                return batch.isEmpty ? nil : batch
            }
            receiver.resume(returning: rest)
        }
    }
}
