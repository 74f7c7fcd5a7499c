import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A provider written at the socket level, for what the mock provider cannot do: close its keep-alive connections,
/// break off mid-stream, never answer, flood a slow reader, speak TLS with a certificate of the test's own CA.
///
/// The request header `x-script` (forwarded by the collector like any other) picks what it does:
/// - `answer` (default): a chat completion with usage, connection kept;
/// - `close-after`: the same answer, then the connection is closed without a word (as a provider's idle timeout does);
/// - `answer-once`: the answer to a connection's first request; a later one on it closes the connection unread (an
///   idle timeout that struck just as the request went out);
/// - `answer-twice`: the answer, then a second, unasked-for one on the same connection;
/// - `reset-mid-stream`: an event stream's head and three events, then a TCP reset;
/// - `stall-mid-stream`: an event stream's head and four events 200 ms apart, then silence (the connection stays open);
/// - `silent`: reads the request and never answers;
/// - `flood`: an event stream of `x-flood-bytes` bytes written as fast as the collector takes them, then its usage.
final class ScriptedUpstream: Sendable {
    let accepted = Atomic<Int>(0)
    let requests = Atomic<Int>(0)
    /// Bytes of the flood written to the socket so far.
    let floodWritten = Atomic<Int>(0)
    private let channel: Mutex<(any Channel)?> = Mutex(nil)

    static let usage = #"{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}"#
    static let answer = #"{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":\#(usage)}"#

    /// Starts listening on 127.0.0.1 (TLS with `tls` when given); returns the port.
    func start(tls: NIOSSLContext? = nil) async throws -> Int {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                self.accepted.add(1, ordering: .relaxed)
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                    try sync.addHandler(ScriptHandler(upstream: self))
                }
            }
        let bound = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        channel.withLock { $0 = bound }
        return bound.localAddress!.port!
    }

    func stop() async {
        let bound = channel.withLock { $0 }
        try? await bound?.close().get()
    }

    final class ScriptHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let upstream: ScriptedUpstream
        var script = "answer"
        var floodLeft = 0
        var flooding = false
        var served = 0

        init(upstream: ScriptedUpstream) { self.upstream = upstream }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                script = head.headers.first(name: "x-script") ?? "answer"
                floodLeft = Int(head.headers.first(name: "x-flood-bytes") ?? "0") ?? 0
            case .body:
                break
            case .end:
                upstream.requests.add(1, ordering: .relaxed)
                run(context)
            }
        }

        private func run(_ context: ChannelHandlerContext) {
            served += 1
            if script == "answer-once", served > 1 {
                context.close(promise: nil)
                return
            }
            switch script {
            case "answer", "close-after", "answer-once":
                let body = ByteBuffer(string: ScriptedUpstream.answer)
                let headers: HTTPHeaders = ["content-type": "application/json", "content-length": String(body.readableBytes)]
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
                let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
                if script == "close-after" { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
            case "answer-twice":
                let body = ByteBuffer(
                    string: ScriptedUpstream.answer.replacingOccurrences(of: "\"prompt_tokens\":11", with: "\"prompt_tokens\":99"))
                let headers: HTTPHeaders = ["content-type": "application/json", "content-length": String(body.readableBytes)]
                for _ in 0..<2 {
                    context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                }
            case "reset-mid-stream":
                writeStreamHead(context)
                for i in 0..<3 {
                    let event = #"data: {"choices":[{"delta":{"content":"part \#(i)"}}],"usage":null}"# + "\n\n"
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: event)))), promise: nil)
                }
                context.flush()
                let channel = context.channel
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(50)) {
                    // SO_LINGER 0: the close is a reset.
                    guard let provider = channel as? any SocketOptionProvider else { return channel.close(promise: nil) }
                    provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
                }
            case "stall-mid-stream":
                // An event at once and three more 200 ms apart (a client that left meets a closed socket), then silence.
                writeStreamHead(context)
                let channel = context.channel
                for i in 0..<4 {
                    let event = ByteBuffer(string: #"data: {"choices":[{"delta":{"content":"part \#(i)"}}],"usage":null}"# + "\n\n")
                    context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(200 * Int64(i))) {
                        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(event)), promise: nil)
                    }
                }
            case "flood":
                writeStreamHead(context)
                flooding = true
                flood(context)
            default:
                break  // silent
            }
        }

        private func writeStreamHead(_ context: ChannelHandlerContext) {
            let headers: HTTPHeaders = ["content-type": "text/event-stream"]
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        }

        static let floodEvent: ByteBuffer = {
            let filler = String(repeating: "x", count: 16 * 1024 - 64)
            return ByteBuffer(string: #"data: {"choices":[{"delta":{"content":"\#(filler)"}}]}"# + "\n\n")
        }()

        /// Writes flood events while the socket takes them; resumes when it is writable again.
        private func flood(_ context: ChannelHandlerContext) {
            while flooding, context.channel.isWritable {
                if floodLeft <= 0 {
                    flooding = false
                    let last = #"data: {"choices":[],"usage":\#(ScriptedUpstream.usage)}"# + "\n\ndata: [DONE]\n\n"
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: last)))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                    return
                }
                let event = Self.floodEvent
                floodLeft -= event.readableBytes
                let upstream = self.upstream
                let size = event.readableBytes
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(event)))).whenSuccess {
                    upstream.floodWritten.add(size, ordering: .relaxed)
                }
            }
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if flooding, context.channel.isWritable { flood(context) }
            context.fireChannelWritabilityChanged()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

/// A certificate authority and server certificates made with the `openssl` command, in a folder of the test's own.
struct TestCertificates {
    let folder: String
    var caFile: String { folder + "/ca.pem" }

    init(folder: String) throws {
        self.folder = folder
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Self.openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", folder + "/ca.key", "-out", folder + "/ca.pem", "-days", "2",
            "-subj", "/CN=Tally Test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    }

    /// A server certificate for `names` (DNS names), signed by this CA (or self-signed, by a CA nobody trusts).
    func serverContext(names: [String], signedByTestCA: Bool = true) throws -> NIOSSLContext {
        let stem = folder + "/" + names.joined(separator: "_") + (signedByTestCA ? "" : "-stranger")
        let san = "subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ",")
        try "\(san)\n".write(toFile: stem + ".ext", atomically: true, encoding: .utf8)
        try Self.openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", stem + ".key", "-out", stem + ".csr", "-subj", "/CN=\(names[0])")
        if signedByTestCA {
            try Self.openssl(
                "x509", "-req", "-in", stem + ".csr", "-CA", caFile, "-CAkey", folder + "/ca.key", "-CAcreateserial", "-out",
                stem + ".pem", "-days", "2", "-extfile", stem + ".ext")
        } else {
            try Self.openssl(
                "x509", "-req", "-in", stem + ".csr", "-signkey", stem + ".key", "-out", stem + ".pem", "-days", "2", "-extfile",
                stem + ".ext")
        }
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(stem + ".pem").map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: stem + ".key", format: .pem)))
        return try NIOSSLContext(configuration: configuration)
    }

    static func openssl(_ arguments: String...) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
}
