import Crypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Files replaced whole: written to a temporary file in the same folder, fsynced, renamed over the target, and the
/// folder fsynced, so a reader sees the old file or the new one, never half of one, even after a crash.
public enum AtomicFile {
    /// Replaces (or creates) `path` with `bytes`, creating missing folders.
    public static func write(_ bytes: some Sequence<UInt8>, to path: String) throws(FileIOError) {
        let file = try Writer(path)
        try file.append(bytes)
        try file.commit()
    }

    /// What a `Writer` wrote.
    public struct Written: Sendable, Equatable {
        public var size: Int
        /// Lowercase hex.
        public var sha256: String
    }

    /// A file replaced whole that is written in pieces, for files too big to hold in memory: what is appended goes to a
    /// temporary file each time a megabyte has built up, and `commit` puts it in place. Readers see the old file or the
    /// whole new one; a writer dropped without `commit` (after an error) removes its temporary file.
    public final class Writer {
        static let pieceSize = 1 << 20
        private let path: String
        private let folder: String
        private let temporary: String
        private var fd: Int32
        private var pending: [UInt8] = []
        private var size = 0
        private var hasher = SHA256()

        /// Starts replacing `path`, creating missing folders.
        public init(_ path: String) throws(FileIOError) {
            self.path = path
            (folder, temporary) = AtomicFile.temporary(beside: path)
            if !folder.isEmpty { try FileIO.makeDirectories(folder) }
            fd = try FileIO.open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
        }

        deinit {
            if fd >= 0 {
                close(fd)
                try? FileIO.unlink(temporary)
            }
        }

        public func append(_ bytes: some Sequence<UInt8>) throws(FileIOError) {
            pending.append(contentsOf: bytes)
            if pending.count >= Self.pieceSize { try flush() }
        }

        private func flush() throws(FileIOError) {
            guard !pending.isEmpty else { return }
            let (fd, temporary) = (fd, temporary)
            let written = pending.withUnsafeBytes { buffer in
                hasher.update(bufferPointer: buffer)
                return Result { () throws(FileIOError) in try FileIO.writeAll(fd, buffer, path: temporary) }
            }
            try written.get()
            size += pending.count
            pending.removeAll(keepingCapacity: true)
        }

        /// Writes what is left, fsyncs, and renames the file over `path`; returns its size and SHA-256.
        @discardableResult
        public func commit() throws(FileIOError) -> Written {
            try flush()
            try FileIO.fsync(fd, path: temporary)
            close(fd)
            fd = -1
            do { try FileIO.rename(temporary, path) } catch {
                try? FileIO.unlink(temporary)
                throw error
            }
            try FileIO.fsyncDirectory(folder.isEmpty ? "." : folder)
            return Written(size: size, sha256: Hex.encode(hasher.finalize()))
        }
    }

    /// `path`'s folder ("" for none) and the hidden name in it that a replacement is written under first.
    static func temporary(beside path: String) -> (folder: String, temporary: String) {
        let folder = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return (folder, folder + (folder.isEmpty ? "" : "/") + ".\(path.split(separator: "/").last ?? "file").tmp-\(getpid())")
    }

    /// The whole content of `path`; nil when there is no such file.
    public static func read(_ path: String) throws(FileIOError) -> [UInt8]? {
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
    public static func link(_ path: String, to target: String) throws(FileIOError) {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink(path, &buffer, buffer.count - 1)
        if length >= 0, String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) == target { return }
        if length < 0, FileIO.exists(path) {
            throw FileIOError(code: .io, message: "\(path) is not a symbolic link; move it away so that it can be one")
        }
        let (folder, temporary) = temporary(beside: path)
        _ = unlink(temporary)
        guard symlink(target, temporary) == 0 else { throw FileIOError.system("cannot create the link", path: temporary) }
        do { try FileIO.rename(temporary, path) } catch {
            try? FileIO.unlink(temporary)
            throw error
        }
        try FileIO.fsyncDirectory(folder.isEmpty ? "." : folder)
    }
}
