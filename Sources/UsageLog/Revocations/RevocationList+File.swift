#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension RevocationList {
    /// The list in the file at `path`; nil when there is no file. A file that does not parse throws.
    public static func read(path: String) throws -> RevocationList? {
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
        return try RevocationList(parsing: bytes)
    }

    /// Writes the list as `docs/revocations.md` says: to a temporary file in the same folder, fsynced, renamed over
    /// `path`, and the folder fsynced, so a reader sees the old list or the new one, never half of one.
    public func write(to path: String, comments: [String] = []) throws(LogIOError) {
        let folder = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !folder.isEmpty { try FileIO.makeDirectories(folder) }
        let temporary = path + ".tmp-\(getpid())"
        let fd = try FileIO.open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
        let bytes = rendered(comments: comments)
        let written = bytes.withUnsafeBytes { buffer in
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
        try FileIO.rename(temporary, path)
        try FileIO.fsyncDirectory(folder.isEmpty ? "." : folder)
    }
}
