#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Files replaced whole: written to a temporary file in the same folder, fsynced, renamed over the target, and the
/// folder fsynced, so a reader sees the old file or the new one, never half of one, even after a crash.
public enum AtomicFile {
    /// Replaces (or creates) `path` with `bytes`, creating missing folders.
    public static func write(_ bytes: some Sequence<UInt8>, to path: String) throws(LogIOError) {
        let folder = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !folder.isEmpty { try FileIO.makeDirectories(folder) }
        let temporary = folder + (folder.isEmpty ? "" : "/") + ".\(path.split(separator: "/").last ?? "file").tmp-\(getpid())"
        let fd = try FileIO.open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
        let contiguous = Array(bytes)
        let written = contiguous.withUnsafeBytes { buffer in
            Result { () throws(LogIOError) in
                try FileIO.writeAll(fd, buffer, path: temporary)
                try FileIO.fsync(fd, path: temporary)
            }
        }
        close(fd)
        do { try written.get() } catch {
            try? FileIO.unlink(temporary)
            throw error
        }
        do { try FileIO.rename(temporary, path) } catch {
            try? FileIO.unlink(temporary)
            throw error
        }
        try FileIO.fsyncDirectory(folder.isEmpty ? "." : folder)
    }

    /// The whole content of `path`; nil when there is no such file.
    public static func read(_ path: String) throws(LogIOError) -> [UInt8]? {
        guard FileIO.exists(path) else { return nil }
        let fd = try FileIO.open(path, O_RDONLY)
        defer { close(fd) }
        var bytes: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
        defer { chunk.deallocate() }
        while true {
            let count = try FileIO.read(fd, into: chunk, path: path)
            if count == 0 { break }
            bytes.append(contentsOf: chunk.prefix(count))
        }
        return bytes
    }
}

extension AtomicFile {
    /// Points the symbolic link `path` at `target` (relative to the link's folder), replacing an older link atomically.
    public static func link(_ path: String, to target: String) throws(LogIOError) {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink(path, &buffer, buffer.count - 1)
        if length >= 0, String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) == target { return }
        if length < 0, FileIO.exists(path) { throw LogIOError(code: .io, message: "\(path) is not a symbolic link; move it away so that it can be one") }
        let folder = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let temporary = folder + (folder.isEmpty ? "" : "/") + ".\(path.split(separator: "/").last ?? "link").tmp-\(getpid())"
        _ = unlink(temporary)
        guard symlink(target, temporary) == 0 else { throw LogIOError.system("cannot create the link", path: temporary) }
        do { try FileIO.rename(temporary, path) } catch {
            try? FileIO.unlink(temporary)
            throw error
        }
        try FileIO.fsyncDirectory(folder.isEmpty ? "." : folder)
    }
}
