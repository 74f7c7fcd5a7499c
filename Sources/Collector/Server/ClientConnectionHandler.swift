import NIOCore
import NIOHTTPTypes
import Synchronization

/// Watches a client connection for the proxy: closes it when a request takes longer than `timeout` from its head to
/// its last byte, and notes when the client has closed its side (`ClientPresence`).
///
/// The timeout: a connection whose request takes longer than `timeout` from its head to its last byte
/// (`collector.request_read_timeout`), so that a client trickling a body cannot hold a connection and its call open.
/// Hummingbird's idle timeout (`client_idle_timeout`) covers a connection idle between requests or slow to send a
/// head; the call whose body is cut off is logged `rejected_invalid` by the proxy and never forwarded.
///
/// A timer is set only for a request still incomplete when a read from the socket ends: most requests arrive whole in
/// one read and cost no timer.
final class ClientConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    let timeout: TimeAmount
    /// When the head of the request being read came, until its end comes.
    private var headAt: NIODeadline?
    private var deadline: Scheduled<Void>?
    /// Whether this connection is listed in `ClientPresence` as one whose client left.
    private var listedAsLeft = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            headAt = .now()
        case .end:
            headAt = nil
            deadline?.cancel()
            deadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let headAt, deadline == nil {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.assumeIsolated().scheduleTask(deadline: headAt + timeout) {
                loopBound.value.close(promise: nil)
            }
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed, !listedAsLeft {
            listedAsLeft = true
            ClientPresence.clientLeft(context.channel)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if listedAsLeft {
            listedAsLeft = false
            ClientPresence.forget(context.channel)
        }
        headAt = nil
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}

/// The client connections whose client has closed its side: the server allows half-closed connections (a client may
/// send its request, close, and read the answer), so the channel stays active and only this says the client is gone.
/// Touched only when a client closes, never per request.
enum ClientPresence {
    private static let left = Mutex<Set<ObjectIdentifier>>([])

    static func clientLeft(_ channel: any Channel) { _ = left.withLock { $0.insert(ObjectIdentifier(channel)) } }

    static func forget(_ channel: any Channel) { _ = left.withLock { $0.remove(ObjectIdentifier(channel)) } }

    /// Whether the client of `channel` is gone: the connection is closed, or the client closed its side.
    static func hasLeft(_ channel: any Channel) -> Bool {
        !channel.isActive || left.withLock { $0.contains(ObjectIdentifier(channel)) }
    }
}
