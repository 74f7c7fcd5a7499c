import TallyCore
import UsageLog

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The advisory lock that keeps two audits off one ledger: `flock` on `<ledger>.lock`, which also records who holds it.
///
/// The kernel releases the lock when the holder exits, however it exits, so a killed audit never leaves it stale.
/// (flock is unreliable on NFS and CIFS: keep the ledger on a local disk.)
public final class AuditLock {
    public let path: String
    private var fd: Int32

    /// Takes the lock beside `ledgerPath`, or throws `.locked` naming the holder. With `wait`, a lock another process
    /// holds is tried again every 100 ms until it is free or `wait` has passed (for `tally keys`, which must get
    /// through while an audit runs).
    public init(ledgerPath: String, purpose: String = "tally audit", wait: Duration = .zero) throws(AuditError) {
        path = ledgerPath + ".lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, FileIO.fileMode)
        guard fd >= 0 else {
            throw AuditError(.io, "cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        let deadline = ContinuousClock.now + wait
        while flock(fd, LOCK_EX | LOCK_NB) != 0, errno == EWOULDBLOCK, ContinuousClock.now < deadline {
            usleep(100_000)
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = Self.readHolder(fd)
            close(fd)
            // `deinit` runs after this throw (every property is set) and releases: it must not truncate or close the
            // number again, which another thread's file may have by then.
            fd = -1
            throw AuditError(
                .locked,
                "another audit holds the ledger lock \(path)\(holder.isEmpty ? "" : " (\(holder))")"
                    + (wait > .zero ? " and did not release it within \(wait)" : "") + "; try again when it has finished")
        }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let hostName = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let note = "\(purpose), pid \(getpid()) on \(hostName), since \(Timestamp.format(milliseconds: Timestamp.now()))\n"
        _ = ftruncate(fd, 0)
        _ = note.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    private static func readHolder(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return "" }
        return String(decoding: buffer[0..<count], as: UTF8.self).trimmingNewlines
    }

    /// Releases the lock; also done when the object goes away.
    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}

extension String {
    fileprivate var trimmingNewlines: String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
