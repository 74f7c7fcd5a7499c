import Foundation
import TestSupport
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
        // A port that was free a moment ago.
        let (socket, port) = try Loopback.boundButNotListening()
        close(socket)
        let (process, stderr) = try Self.start(command + ["--config", w.configPath, "--listen", "127.0.0.1:\(port)"], secret: "s3cret")

        var health: String?
        for _ in 0..<200 where health == nil {
            health = try await offPool { Self.get("/healthz", port: port) }
            if health == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(health?.hasPrefix("HTTP/1.1 200") == true, "\(command.last!) answered /healthz")

        kill(process.processIdentifier, SIGTERM)
        let status = try await offPool {
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
        let status = try await offPool {
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

    /// The whole answer to `GET path`, or nil when nothing listens yet.
    static func get(_ path: String, port: Int) -> String? {
        guard let fd = try? Loopback.connect(port: port) else { return nil }
        defer { close(fd) }
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
