import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The two ways to start the collector, as a service manager starts them: `tally collect` and the `tally-collector`
/// executable take the same options, serve the same pages, stop cleanly on SIGTERM and refuse to start without the
/// hash secret.
@Suite("collector executables")
struct CollectorExecutableTests {
    static let commands: [[String]] = [
        [AuditCLITests.executable, "collect"],
        [URL(fileURLWithPath: AuditCLITests.executable).deletingLastPathComponent().appendingPathComponent("tally-collector").path],
    ]

    @Test(arguments: commands)
    func startsServesAndStopsOnSIGTERM(command: [String]) async throws {
        let w = try AuditCLITests.Workspace()
        defer { w.remove() }
        let port = try Self.freePort()
        let (process, stderr) = try Self.start(command + ["--config", w.configPath, "--listen", "127.0.0.1:\(port)"], secret: "s3cret")

        var health: String?
        for _ in 0..<200 where health == nil {
            health = try await Self.offPool { Self.get("/healthz", port: port) }
            if health == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(health?.hasPrefix("HTTP/1.1 200") == true, "\(command.last!) answered /healthz")

        kill(process.processIdentifier, SIGTERM)
        let status = try await Self.offPool {
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(status == 0)
        let log = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let lines = log.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix(#"{"ts":""#) }, "its own log is JSON lines: \(log)")
        #expect(!log.contains("s3cret"))
    }

    @Test(arguments: commands)
    func withoutTheHashSecretItExits78AndSaysWhy(command: [String]) async throws {
        let w = try AuditCLITests.Workspace()
        defer { w.remove() }
        let (process, stderr) = try Self.start(command + ["--config", w.configPath, "--listen", "127.0.0.1:0"], secret: nil)
        let status = try await Self.offPool {
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(status == 78)
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(message.contains("TALLY_HASH_SECRET is not set"))
    }

    static func start(_ arguments: [String], secret: String?) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        var environment = ProcessInfo.processInfo.environment
        environment["TALLY_HASH_SECRET"] = secret
        process.environment = environment
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return (process, stderr)
    }

    /// Blocking work (waiting for a child, a socket read) on a Dispatch thread, off the cooperative pool.
    static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// A port that was free a moment ago.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The whole answer to `GET path`, or nil when nothing listens yet.
    static func get(_ path: String, port: Int) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else { return nil }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            answer += buffer[0..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
