import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import TallyConfig
import TallyCore
import UsageLog

/// `/reports/`: the audit's report folders (`audit.reports_dir`) for people with the admin token (`docs/reports.md`).
///
/// HTTP Basic with the admin token as the password (any user name), so a browser asks for it. Index pages list the
/// months and their files; files are served with their content type and a `Content-Disposition` naming the month.
/// Nothing outside the reports folder is reachable: a path with `..`, a hidden name or an encoded slash is refused,
/// and a resolved path must stay inside the folder.
struct ReportDownloads: Sendable {
    /// The reports folder as configured; resolved (links followed) on each request, since the audit may create it
    /// after the collector starts.
    let folder: String
    var root: String { Self.realPath(folder) ?? folder }
    /// SHA-256 of the admin token; nil when it is not set (then downloads are off).
    let tokenDigest: [UInt8]?

    init(config: Config, environment: [String: String]) {
        folder = config.resolve(config.audit.reportsDir)
        tokenDigest = environment[config.collector.adminTokenEnv].flatMap { $0.isEmpty ? nil : Array(SHA256.hash(data: Array($0.utf8))) }
        adminTokenEnv = config.collector.adminTokenEnv
    }

    private let adminTokenEnv: String

    /// The answer to a request under `/reports`; reads files, so it runs off the event loops.
    func respond(method: HTTPMethod, path: String, authorization: String?) -> AdminResponse {
        guard method == .GET || method == .HEAD else {
            var response = Self.text("only GET and HEAD are served under /reports/\n", status: .methodNotAllowed)
            response.headers.add(name: "allow", value: "GET, HEAD")
            return response
        }
        guard let tokenDigest else {
            return Self.text("report downloads are off: the collector was started without \(adminTokenEnv) set\n", status: .notFound)
        }
        guard authorized(authorization, tokenDigest) else {
            var response = Self.text(
                "the reports need the admin token as the password (HTTP Basic; any user name)\n", status: .unauthorized)
            response.headers.add(name: "www-authenticate", value: "Basic realm=\"Tally reports\", charset=\"UTF-8\"")
            return response
        }
        if path == "/reports" { return Self.redirect("/reports/") }
        guard path.hasPrefix("/reports/"), let parts = Self.segments(String(path.dropFirst("/reports/".count))) else {
            return Self.text("not found\n", status: .notFound)
        }
        switch parts.count {
        case 0:
            return index()
        case 1 where path.hasSuffix("/"):
            return folderIndex(parts[0])
        case 1:
            return Self.redirect("/reports/\(Self.percentEncode(parts[0]))/")
        case 2 where !path.hasSuffix("/"):
            return file(parts[0], parts[1], method: method)
        default:
            return Self.text("not found\n", status: .notFound)
        }
    }

    // MARK: Auth

    private func authorized(_ header: String?, _ digest: [UInt8]) -> Bool {
        guard let header, header.count > 6, header.prefix(6).lowercased() == "basic ",
            let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { return false }
        let password = Array(decoded[decoded.index(after: colon)...])
        let presented = Array(SHA256.hash(data: password))
        // Equal-length digests compared in constant time.
        return zip(presented, digest).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    // MARK: Paths

    /// The decoded path segments, or nil for anything that could leave the folder or name a hidden file.
    static func segments(_ rest: String) -> [String]? {
        var parts: [String] = []
        var raws = rest.split(separator: "/", omittingEmptySubsequences: false)
        if raws.last?.isEmpty == true { raws.removeLast() }  // a trailing slash names a folder
        for raw in raws {
            guard let part = String(raw).removingPercentEncoding, !part.isEmpty, !part.hasPrefix("."),
                !part.contains("/"), !part.contains("\\"), !part.contains("\0")
            else { return nil }
            parts.append(part)
        }
        return parts
    }

    /// `folder/name` when it exists and, with links followed, lies inside the reports folder.
    private func resolve(_ components: [String]) -> String? {
        let root = self.root
        let path = ([root] + components).joined(separator: "/")
        guard let real = Self.realPath(path), real == root || real.hasPrefix(root + "/") else { return nil }
        return real
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    // MARK: Pages

    private func index() -> AdminResponse {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        let months = names.filter { !$0.hasPrefix(".") && resolve([$0]).map(Self.isDirectory) == true }.sorted { a, b in
            a == "latest" ? true : b == "latest" ? false : a > b
        }
        var rows = ""
        for month in months {
            let manifest = resolve([month, "manifest.json"]).flatMap { FileManager.default.contents(atPath: $0) }
            let state =
                manifest.map { String(decoding: $0, as: UTF8.self).contains("\"final\":true") ? "final" : "in progress" } ?? "incomplete"
            let label = month == "latest" ? "latest (the current month)" : month
            rows += "<li><a href=\"\(Self.percentEncode(month))/\">\(HTML.escape(label))</a> — \(state)</li>\n"
        }
        return Self.page(
            title: "Tally reports", body: months.isEmpty ? "<p>No reports yet: the audit writes them.</p>" : "<ul>\n\(rows)</ul>")
    }

    private func folderIndex(_ month: String) -> AdminResponse {
        guard let folder = resolve([month]), Self.isDirectory(folder) else { return Self.text("not found\n", status: .notFound) }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        var rows = ""
        for name in names {
            let size = (try? FileManager.default.attributesOfItem(atPath: folder + "/" + name)[.size] as? Int) ?? 0
            rows += "<li><a href=\"\(Self.percentEncode(name))\">\(HTML.escape(name))</a> (\(size) bytes)</li>\n"
        }
        return Self.page(title: "Tally reports: \(month)", body: "<p><a href=\"../\">All months</a></p>\n<ul>\n\(rows)</ul>")
    }

    private func file(_ month: String, _ name: String, method: HTTPMethod) -> AdminResponse {
        guard let path = resolve([month, name]), !Self.isDirectory(path),
            let type = Self.contentTypes.first(where: { name.hasSuffix($0.key) })?.value
        else {
            return Self.text("not found\n", status: .notFound)
        }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: type)
        headers.add(name: "x-content-type-options", value: "nosniff")
        headers.add(name: "cache-control", value: "no-store")
        // The month in the saved name, so files from different months do not overwrite each other in Downloads.
        let realMonth = path.split(separator: "/").dropLast().last.map(String.init) ?? month
        let disposition = name.hasSuffix(".html") ? "inline" : "attachment"
        headers.add(name: "content-disposition", value: "\(disposition); filename=\"tally-\(realMonth)-\(name)\"")
        if name.hasSuffix(".html") {
            // The report needs nothing from anywhere: forbid everything but its own inline styles.
            headers.add(name: "content-security-policy", value: "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
        }
        // One read of one open file: a report replaced meanwhile is served whole, old or new.
        guard let bytes = try? AtomicFile.read(path) else { return Self.text("not found\n", status: .notFound) }
        headers.add(name: "content-length", value: String(bytes.count))
        return AdminResponse(status: .ok, headers: headers, body: method == .HEAD ? nil : ByteBuffer(bytes: bytes))
    }

    static let contentTypes: [String: String] = [
        ".csv": "text/csv; charset=utf-8", ".html": "text/html; charset=utf-8", ".json": "application/json",
    ]

    static func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }

    static func percentEncode(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? name
    }

    static func page(title: String, body: String) -> AdminResponse {
        let html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(HTML.escape(title))</title>
            <style>body{font:15px/1.5 system-ui,sans-serif;margin:32px;color:#1d2330}a{color:#0062a0}</style></head>
            <body><h1>\(HTML.escape(title))</h1>
            \(body)
            </body></html>

            """
        let body = ByteBuffer(string: html)
        let headers: HTTPHeaders = [
            "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'", "content-length": String(body.readableBytes),
        ]
        return AdminResponse(status: .ok, headers: headers, body: body)
    }

    static func redirect(_ location: String) -> AdminResponse {
        AdminResponse(status: .movedPermanently, headers: ["location": location, "content-length": "0"], body: nil)
    }

    static func text(_ body: String, status: HTTPResponseStatus) -> AdminResponse {
        AdminPages.text(body, status: status)
    }
}

/// Escaping for the index pages (the collector does not depend on the Report module).
enum HTML {
    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
