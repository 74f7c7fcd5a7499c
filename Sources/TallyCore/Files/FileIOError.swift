#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file-system failure while writing or reading a file (log segments, report files, the revocation list), with
/// the path and the system's reason.
public struct FileIOError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A system call failed (open, write, fsync, rename…).
        public static let io = Code("io")
        /// Another writer holds the collector's log folder.
        public static let locked = Code("locked")
        /// zlib refused the data.
        public static let compression = Code("compression")
    }

    public var code: Code
    public var message: String
    /// `errno` when a system call failed.
    public var errno: Int32?

    public init(code: Code, message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    /// An error for the system call that just failed, with `strerror(errno)`.
    package static func system(_ what: String, path: String) -> FileIOError {
        let number = Glibc.errno
        return FileIOError(code: .io, message: "\(what) \(path): \(String(cString: strerror(number)))", errno: number)
    }

    public var description: String { message }
}
