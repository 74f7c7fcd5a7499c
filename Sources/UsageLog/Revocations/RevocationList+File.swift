import TallyCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension RevocationList {
    /// The list in the file at `path`; nil when there is no file. A file that does not parse throws.
    public static func read(path: String) throws -> RevocationList? {
        guard let bytes = try AtomicFile.read(path) else { return nil }
        return try RevocationList(parsing: bytes)
    }

    /// Writes the list as `docs/revocations.md` says: to a temporary file in the same folder, fsynced, renamed over
    /// `path`, and the folder fsynced, so a reader sees the old list or the new one, never half of one.
    public func write(to path: String, comments: [String] = []) throws(FileIOError) {
        try AtomicFile.write(rendered(comments: comments), to: path)
    }
}
