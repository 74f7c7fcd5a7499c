import Foundation
import TestSupport
import Testing

@testable import Collector

/// `/reports/` as a finance person's browser and an attacker's script see it.
@Suite("report downloads")
struct ReportDownloadTests {
    static let token = "admin-token-for-tests-0123456789"

    /// A reports folder with one month, a `latest` link, and a secret beside it that must stay out of reach.
    static func prepare(_ folder: String) throws {
        let month = folder + "/reports/2026-11"
        try FileManager.default.createDirectory(atPath: month, withIntermediateDirectories: true)
        try "date,cost\r\n2026-11-01,1.000000\r\n".write(toFile: month + "/attribution.csv", atomically: true, encoding: .utf8)
        try "<!DOCTYPE html><title>r</title>".write(toFile: month + "/report.html", atomically: true, encoding: .utf8)
        try #"{"final":false}"#.write(toFile: month + "/manifest.json", atomically: true, encoding: .utf8)
        try "hidden".write(toFile: month + "/.attribution.csv.tmp-1", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: folder + "/reports/latest", withDestinationPath: "2026-11")
        try "TOP SECRET".write(toFile: folder + "/secret.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: month + "/escape.csv", withDestinationPath: "../../secret.txt")
    }

    static func basic(_ password: String, user: String = "finance") -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    @Test func theAdminTokenOpensTheReportsAndNothingElseDoes() async throws {
        _ = try await Harness.run(
            extraConfig: "audit: {reports_dir: $FOLDER/reports}", environment: ["TALLY_ADMIN_TOKEN": Self.token],
            prepare: Self.prepare
        ) { h in
            // No credentials, a wrong token, a virtual key: 401 with a Basic challenge so a browser asks.
            for authorization in [nil, Self.basic("wrong"), "Bearer \(Harness.aliceSecret)", Self.basic(Harness.aliceSecret)] {
                let r = try await RawHTTP.get(port: h.collectorPort, path: "/reports/2026-11/attribution.csv", authorization: authorization)
                #expect(r.status == 401)
                #expect(r.header("www-authenticate")?.hasPrefix("Basic realm=") == true)
                #expect(!r.body.contains("2026-11-01"))
            }
            let auth = Self.basic(Self.token)
            let index = try await RawHTTP.get(port: h.collectorPort, path: "/reports/", authorization: auth)
            #expect(index.status == 200 && index.body.contains("href=\"2026-11/\"") && index.body.contains("href=\"latest/\""))
            let month = try await RawHTTP.get(port: h.collectorPort, path: "/reports/2026-11/", authorization: auth)
            #expect(month.status == 200 && month.body.contains("attribution.csv") && !month.body.contains(".tmp"))

            let csv = try await RawHTTP.get(
                port: h.collectorPort, path: "/reports/latest/attribution.csv", authorization: Self.basic(Self.token, user: ""))
            #expect(csv.status == 200)
            #expect(csv.body == "date,cost\r\n2026-11-01,1.000000\r\n")
            #expect(csv.header("content-type") == "text/csv; charset=utf-8")
            #expect(csv.header("content-disposition") == "attachment; filename=\"tally-2026-11-attribution.csv\"")
            let html = try await RawHTTP.get(port: h.collectorPort, path: "/reports/2026-11/report.html", authorization: auth)
            #expect(html.status == 200 && html.header("content-type") == "text/html; charset=utf-8")
            #expect(html.header("content-disposition")?.hasPrefix("inline;") == true)
            #expect(html.header("content-security-policy")?.contains("default-src 'none'") == true)
            #expect(
                try await RawHTTP.get(port: h.collectorPort, path: "/reports/2026-11/manifest.json", authorization: auth).header(
                    "content-type") == "application/json")

            // Traversal, plain and encoded, hidden files, a link out of the folder, other methods: refused.
            for path in [
                "/reports/../secret.txt", "/reports/2026-11/../../secret.txt", "/reports/%2e%2e/secret.txt",
                "/reports/2026-11/%2e%2e%2f%2e%2e%2fsecret.txt", "/reports/2026-11/..%2F..%2Fsecret.txt", "/reports/..%5csecret.txt",
                "/reports/2026-11/escape.csv", "/reports/2026-11/.attribution.csv.tmp-1", "/reports//secret.txt",
                "/reports/2026-11/attribution.csv/", "/reports/2026-11/nothing.csv", "/reports/%00/x.csv",
            ] {
                let r = try await RawHTTP.get(port: h.collectorPort, path: path, authorization: auth)
                #expect(r.status == 404 || r.status == 400, "\(path) answered \(r.status)")
                #expect(!r.body.contains("TOP SECRET"), "\(path) leaked the file")
            }
            #expect(
                try await RawHTTP.get(
                    port: h.collectorPort, path: "/reports/2026-11/attribution.csv", authorization: auth, method: "DELETE"
                ).status == 405)
            #expect(try await RawHTTP.get(port: h.collectorPort, path: "/reports", authorization: auth).status == 301)
        }
    }

    @Test func withoutAnAdminTokenDownloadsAreOff() async throws {
        _ = try await Harness.run(extraConfig: "audit: {reports_dir: $FOLDER/reports}", prepare: Self.prepare) { h in
            let r = try await RawHTTP.get(port: h.collectorPort, path: "/reports/2026-11/attribution.csv", authorization: Self.basic(""))
            #expect(r.status == 404)
            #expect(r.body.contains("TALLY_ADMIN_TOKEN"))
            #expect(!r.body.contains("2026-11-01"))
        }
    }
}

/// HTTP/1.1 over a plain socket, so that paths reach the server exactly as written (clients normalise `..`).
enum RawHTTP {
    struct Reply {
        var status: Int
        var headers: [(String, String)]
        var body: String
        func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }
    }

    /// Runs on a Dispatch thread: blocking socket calls on the few cooperative threads would starve the server.
    static func get(port: Int, path: String, authorization: String?, method: String = "GET") async throws -> Reply {
        try await offPool { try blockingGet(port: port, path: path, authorization: authorization, method: method) }
    }

    static func blockingGet(port: Int, path: String, authorization: String?, method: String) throws -> Reply {
        let fd = try Loopback.connect(port: port)
        defer { close(fd) }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if let authorization { request += "Authorization: \(authorization)\r\n" }
        request += "\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        // Never wait long: a server that keeps the connection open ends the read by the timeout, not a hang.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        func complete() -> Bool {
            let text = String(decoding: bytes, as: UTF8.self)
            guard let split = text.range(of: "\r\n\r\n") else { return false }
            let head = text[..<split.lowerBound].lowercased()
            let bodyBytes = text[split.upperBound...].utf8.count
            if let line = head.components(separatedBy: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
            {
                return bodyBytes >= length
            }
            if head.contains("transfer-encoding: chunked") { return text.hasSuffix("\r\n0\r\n\r\n") }
            return method == "HEAD" || head.hasPrefix("http/1.1 3") || head.hasPrefix("http/1.1 1")
        }
        while !complete() {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw POSIXError(.EBADMSG) }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        let headers = lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var body = String(text[split.upperBound...])
        if headers.contains(where: { $0.0 == "transfer-encoding" && $0.1 == "chunked" }) { body = dechunk(body) }
        return Reply(status: status, headers: headers, body: body)
    }

    static func dechunk(_ text: String) -> String {
        var rest = Substring(text)
        var out = ""
        while let end = rest.range(of: "\r\n"), let size = Int(rest[..<end.lowerBound], radix: 16), size > 0 {
            let start = end.upperBound
            let stop = rest.utf8.index(start, offsetBy: size)
            out += rest[start..<stop]
            rest = rest[stop...].dropFirst(2)
        }
        return out
    }
}
