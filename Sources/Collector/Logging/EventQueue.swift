import Synchronization
import TallyCore
import UsageLog

/// A bounded queue from request handlers to the one log writer. A handler that finds it full waits for room:
/// events are never dropped, and a stalled disk slows requests down instead of losing their records.
public final class EventQueue: Sendable {
    private struct State {
        var buffer: [UsageEvent] = []
        var waitingSenders: [(UsageEvent, CheckedContinuation<Void, Never>)] = []
        var waitingReceiver: CheckedContinuation<[UsageEvent]?, Never>?
        var closed = false
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = 8192) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Events waiting for the writer.
    public var depth: Int { state.withLock { $0.buffer.count + $0.waitingSenders.count } }

    /// Hands an event to the writer, waiting while the queue is full. After `close`, events are still accepted
    /// (a request finishing during shutdown must not lose its record) and drained by the writer's last batch.
    public func send(_ event: UsageEvent) async {
        // Fast path: room in the buffer, or the writer is waiting.
        enum Outcome {
            case done
            case resume(CheckedContinuation<[UsageEvent]?, Never>, [UsageEvent])
            case wait
        }
        let outcome: Outcome = state.withLock { s in
            if let receiver = s.waitingReceiver {
                s.waitingReceiver = nil
                var batch = s.buffer
                batch.append(event)
                s.buffer.removeAll()
                return .resume(receiver, batch)
            }
            if s.buffer.count < capacity || s.closed {
                s.buffer.append(event)
                return .done
            }
            return .wait
        }
        switch outcome {
        case .done:
            return
        case .resume(let receiver, let batch):
            receiver.resume(returning: batch)
        case .wait:
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow: Bool = state.withLock { s in
                    if s.buffer.count < capacity || s.closed {
                        s.buffer.append(event)
                        return true
                    }
                    s.waitingSenders.append((event, continuation))
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// The next batch of events (everything queued), waiting for one; nil once closed and empty.
    public func nextBatch() async -> [UsageEvent]? {
        enum Outcome {
            case batch([UsageEvent], [CheckedContinuation<Void, Never>])
            case end, wait
        }
        let outcome: Outcome = state.withLock { s in
            if !s.buffer.isEmpty || !s.waitingSenders.isEmpty {
                var batch = s.buffer
                s.buffer.removeAll(keepingCapacity: true)
                let senders = s.waitingSenders
                s.waitingSenders.removeAll()
                batch.append(contentsOf: senders.map(\.0))
                return .batch(batch, senders.map(\.1))
            }
            return s.closed ? .end : .wait
        }
        switch outcome {
        case .batch(let batch, let senders):
            for sender in senders { sender.resume() }
            return batch
        case .end:
            return nil
        case .wait:
            return await withCheckedContinuation { (continuation: CheckedContinuation<[UsageEvent]?, Never>) in
                let immediate: [UsageEvent]?? = state.withLock { s in
                    if !s.buffer.isEmpty {
                        let batch = s.buffer
                        s.buffer.removeAll(keepingCapacity: true)
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

    /// Wakes the writer if it waits for events, so it can do periodic work; returns an empty batch to it.
    public func wakeWriter() {
        let receiver = state.withLock { s -> CheckedContinuation<[UsageEvent]?, Never>? in
            defer { s.waitingReceiver = nil }
            return s.waitingReceiver
        }
        receiver?.resume(returning: [])
    }

    /// No more waiting: the writer drains what is queued and then gets nil.
    public func close() {
        let (receiver, senders) = state.withLock { s -> (CheckedContinuation<[UsageEvent]?, Never>?, [CheckedContinuation<Void, Never>]) in
            s.closed = true
            let receiver = s.waitingReceiver
            s.waitingReceiver = nil
            for (event, _) in s.waitingSenders { s.buffer.append(event) }
            let senders = s.waitingSenders.map(\.1)
            s.waitingSenders.removeAll()
            return (receiver, senders)
        }
        for sender in senders { sender.resume() }
        if let receiver {
            let rest: [UsageEvent]? = state.withLock { s in
                let batch = s.buffer
                s.buffer.removeAll()
                return batch.isEmpty ? nil : batch
            }
            receiver.resume(returning: rest)
        }
    }
}
