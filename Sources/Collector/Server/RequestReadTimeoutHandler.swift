import NIOCore
import NIOHTTPTypes

/// Closes a client connection whose request takes longer than `timeout` from its head to its last byte
/// (`collector.request_read_timeout`), so that a client trickling a body cannot hold a connection and its call open.
/// Hummingbird's idle timeout (`client_idle_timeout`) covers a connection idle between requests or slow to send a
/// head; the call whose body is cut off is logged `rejected_invalid` by the proxy and never forwarded.
///
/// A timer is set only for a request still incomplete when a read from the socket ends: most requests arrive whole in
/// one read and cost no timer.
final class RequestReadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    let timeout: TimeAmount
    /// When the head of the request being read came, until its end comes.
    private var headAt: NIODeadline?
    private var deadline: Scheduled<Void>?

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

    func channelInactive(context: ChannelHandlerContext) {
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
