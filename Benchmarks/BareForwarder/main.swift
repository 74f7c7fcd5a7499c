// The reference for `scripts/bench-collector.sh`: a bare Hummingbird + AsyncHTTPClient forwarder on Hummingbird's
// defaults. It forwards method, path, query, headers and body to one upstream and streams the answer back, with no
// key check, parsing, hashing, metrics or logging. What the collector costs beyond it is what Tally's own work costs.
//
//   bare-forwarder LISTEN_PORT UPSTREAM_BASE_URL
import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1

let arguments = CommandLine.arguments
guard arguments.count == 3, let port = Int(arguments[1]) else {
    FileHandle.standardError.write(Data("usage: bare-forwarder LISTEN_PORT UPSTREAM_BASE_URL\n".utf8))
    exit(64)
}
let upstreamBase = arguments[2].hasSuffix("/") ? String(arguments[2].dropLast()) : arguments[2]
let hopByHop: Set<String> = [
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
]

var configuration = HTTPClient.Configuration()
configuration.decompression = .disabled
configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)

let responder = CallbackResponder<BasicRequestContext> { request, _ in
    var request = request
    let body = try await request.collectBody(upTo: 64 << 20)
    var upstream = HTTPClientRequest(url: upstreamBase + request.uri.path + (request.uri.query.map { "?" + $0 } ?? ""))
    upstream.method = HTTPMethod(rawValue: request.method.rawValue)
    for field in request.headers where !hopByHop.contains(field.name.canonicalName) {
        upstream.headers.add(name: field.name.rawName, value: field.value)
    }
    if body.readableBytes > 0 { upstream.body = .bytes(body) }
    let response = try await client.execute(upstream, timeout: .seconds(600))
    var headers = HTTPFields()
    for header in response.headers where !hopByHop.contains(header.name.lowercased()) {
        if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
    }
    return Response(
        status: HTTPResponse.Status(code: Int(response.status.code)), headers: headers,
        body: ResponseBody(asyncSequence: response.body))
}
let app = Application(responder: responder, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
try await client.shutdown()
