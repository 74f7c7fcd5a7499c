import AsyncHTTPClient
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix

/// Runs each connection's Swift tasks on the event loop that owns its socket.
///
/// Hummingbird handles a connection in a task on Swift's global pool, so every request crosses threads several times:
/// socket loop → pool (handler) → the upstream connection's loop → pool → socket loop. Each crossing is a thread
/// wake-up, which costs more than everything the collector does for a call. With the connection task preferring its
/// own loop, and AsyncHTTPClient picking the current loop for the upstream call (`MultiThreadedEventLoopGroup.any()`
/// returns the calling loop), a call stays on one thread from the client's bytes to the provider and back.
///
/// Whatever runs under it must not block: file I/O in the connection task goes through ``offLoop(_:)``.
struct LoopAffineChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await inner.handle(value: value, logger: logger)
        }
    }
}

/// A task executor that runs jobs on one NIO event loop; enqueueing from the loop itself wakes no thread.
final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        loop.execute { job.runSynchronously(on: executor) }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with each connection's tasks kept on its event loop (see ``LoopAffineChannel``).
    static func loopAffineHTTP1(configuration: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            LoopAffineChannel(inner: HTTP1Channel(responder: responder, configuration: configuration))
        }
    }
}

/// Runs `work` on Swift's global pool instead of the connection's event loop: for anything that may block (files).
func offLoop<T: Sendable>(_ work: @Sendable () async throws -> T) async rethrows -> T {
    try await withTaskExecutorPreference(globalConcurrentExecutor, operation: work)
}

/// One upstream HTTP client per event loop, so that a call's upstream connection lives on the loop that runs its
/// handler. A single client over the whole group hands out whichever idle connection it has, often one on the other
/// loop, and then every request and response part crosses threads.
final class UpstreamClients: Sendable {
    private let byLoop: [ObjectIdentifier: HTTPClient]
    /// For callers that are not on one of the loops (none in the collector): any loop's client works from any thread.
    private let fallback: HTTPClient

    init(group: MultiThreadedEventLoopGroup, configuration: HTTPClient.Configuration) {
        var byLoop: [ObjectIdentifier: HTTPClient] = [:]
        for loop in group.makeIterator() {
            byLoop[ObjectIdentifier(loop)] = HTTPClient(eventLoopGroupProvider: .shared(loop), configuration: configuration)
        }
        self.byLoop = byLoop
        fallback = byLoop.values.first!
    }

    /// The client whose connections live on the calling thread's event loop.
    var current: HTTPClient {
        MultiThreadedEventLoopGroup.currentEventLoop.flatMap { byLoop[ObjectIdentifier($0)] } ?? fallback
    }

    func shutdown() async {
        for client in byLoop.values { try? await client.shutdown() }
    }
}
