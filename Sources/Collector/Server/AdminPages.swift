import NIOCore
import NIOHTTP1

/// An answer of the collector's own (health, metrics, report downloads): small, and whole before it is written.
struct AdminResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    /// Nil for answers without a body (a redirect, an answer to HEAD, which still states the length).
    var body: ByteBuffer?

    init(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer?) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A whole body of one content type, with its length.
    init(status: HTTPResponseStatus, contentType: String, body: ByteBuffer) {
        self.init(status: status, headers: ["content-type": contentType, "content-length": String(body.readableBytes)], body: body)
    }
}

/// The collector's own paths, served on the proxy's listener by the same pipeline: `/healthz`, `/readyz`, `/metrics`,
/// and `/reports/` (`docs/reports.md`). Provider names cannot take these paths (the config refuses them).
struct AdminPages: Sendable {
    let queue: EventQueue
    let keys: KeyState
    let metrics: CollectorMetrics
    let downloads: ReportDownloads

    /// Whether `uri` is one of the collector's own paths rather than a call to forward.
    static func serves(_ uri: String) -> Bool {
        let path = path(uri)
        return path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/reports" || path.hasPrefix("/reports/")
    }

    /// The URI without its query (no copy: every proxied call's URI is asked `serves` first).
    private static func path(_ uri: String) -> Substring {
        uri.utf8.firstIndex(of: UInt8(ascii: "?")).map { uri[..<$0] } ?? uri[...]
    }

    /// The answer, or nil for a report download, which reads files and is answered by `download` off the loop.
    func respond(to head: HTTPRequestHead) -> AdminResponse? {
        let path = Self.path(head.uri)
        if path == "/reports" || path.hasPrefix("/reports/") { return nil }
        guard head.method == .GET || head.method == .HEAD else {
            var response = Self.text("only GET is served at \(path)\n", status: .methodNotAllowed)
            response.headers.add(name: "allow", value: "GET")
            return response
        }
        switch path {
        case "/healthz":
            return Self.text("ok\n")
        case "/readyz":
            if let problem = queue.writerProblem {
                return Self.text(
                    "not ready: the usage log cannot be written (\(problem)); new calls wait for room in its queue and are refused with 503 past log_queue_wait\n",
                    status: .serviceUnavailable)
            }
            let readiness = keys.readiness
            return Self.text(readiness.detail + "\n", status: readiness.ready ? .ok : .serviceUnavailable)
        default:
            return Self.text(
                metrics.render(queueDepth: queue.depth, reservedSlots: queue.reservedSlots), contentType: "text/plain; version=0.0.4")
        }
    }

    /// A report download (blocking file reads: not on an event loop).
    func download(_ head: HTTPRequestHead) -> AdminResponse {
        downloads.respond(method: head.method, path: String(Self.path(head.uri)), authorization: head.headers.first(name: "authorization"))
    }

    static func text(_ body: String, status: HTTPResponseStatus = .ok, contentType: String = "text/plain; charset=utf-8") -> AdminResponse {
        AdminResponse(status: status, contentType: contentType, body: ByteBuffer(string: body))
    }
}
