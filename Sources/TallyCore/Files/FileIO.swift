import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Thin, error-checked wrappers over the POSIX calls the segment code needs.
package enum FileIO {
    /// The mode files Tally creates get (less the umask): log segments, the ledger, the revocation list, reports.
    /// 0640, no world read, unless the config's `file_mode` says otherwise (set once at start).
    private static let createMode = Atomic<UInt32>(0o640)

    /// The mode new files get now.
    package static var fileMode: mode_t { mode_t(createMode.load(ordering: .relaxed)) }

    /// Sets the mode of new files (the config's `file_mode`), for the whole process.
    package static func setFileMode(_ mode: UInt32) { createMode.store(mode, ordering: .relaxed) }

    package static func open(_ path: String, _ flags: Int32, mode: mode_t? = nil) throws(FileIOError) -> Int32 {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode ?? fileMode)
        guard fd >= 0 else { throw FileIOError.system("cannot open", path: path) }
        return fd
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(FileIOError) {
        var written = 0
        try writeAll(fd, bytes, path: path, progress: &written)
    }

    /// Writes all of `bytes`, retrying short writes and EINTR; `progress` says how many were written, also when it
    /// throws part way.
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String, progress: inout Int) throws(FileIOError) {
        progress = 0
        while progress < bytes.count {
            let n = write(fd, bytes.baseAddress! + progress, bytes.count - progress, path: path)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileIOError.system("cannot write", path: path)
            }
            progress += n
        }
    }

    /// Reads up to `buffer.count` bytes; 0 at end of file.
    package static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws(FileIOError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress!, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileIOError.system("cannot read", path: path)
            }
            return n
        }
    }

    /// `write(2)`, or, under a simulated full disk (`simulateFullDisk`), as much as its room allows and then ENOSPC.
    private static func write(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int, path: String) -> Int {
        guard fullDisksSimulated.load(ordering: .relaxed) else { return Glibc.write(fd, pointer, count) }
        let allowed: Int? = fullDisks.withLock { disks in
            guard let folder = disks.keys.first(where: { path.hasPrefix($0) }) else { return nil }
            let room = min(disks[folder]!, count)
            disks[folder]! -= room
            return room
        }
        guard let allowed else { return Glibc.write(fd, pointer, count) }
        if allowed == 0 {
            errno = ENOSPC
            return -1
        }
        return Glibc.write(fd, pointer, allowed)
    }

    private static let fullDisksSimulated = Atomic<Bool>(false)
    private static let fullDisks = Mutex<[String: Int]>([:])

    /// For tests of a full disk: writes to files under `folder` succeed for `room` more bytes (a write that crosses it
    /// is cut short there), then fail with ENOSPC, as on a full file system; nil frees the disk again.
    package static func simulateFullDisk(under folder: String, room: Int?) {
        fullDisks.withLock { disks in
            disks[folder] = room
            fullDisksSimulated.store(!disks.isEmpty, ordering: .relaxed)
        }
    }

    package static func fsync(_ fd: Int32, path: String) throws(FileIOError) {
        guard Glibc.fsync(fd) == 0 else { throw FileIOError.system("cannot fsync", path: path) }
    }

    /// fsyncs a directory so that a rename or a new file in it survives a crash.
    package static func fsyncDirectory(_ path: String) throws(FileIOError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { Glibc.close(fd) }
        try fsync(fd, path: path)
    }

    package static func rename(_ from: String, _ to: String) throws(FileIOError) {
        guard Glibc.rename(from, to) == 0 else { throw FileIOError.system("cannot rename to \(to):", path: from) }
    }

    package static func unlink(_ path: String) throws(FileIOError) {
        guard Glibc.unlink(path) == 0 || errno == ENOENT else { throw FileIOError.system("cannot remove", path: path) }
    }

    package static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Creates `path` and its missing parents.
    package static func makeDirectories(_ path: String) throws(FileIOError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw FileIOError.system("cannot create directory", path: current)
            }
        }
    }

    /// The names in a directory, without `.` and `..`.
    package static func list(_ path: String) throws(FileIOError) -> [String] {
        guard let dir = opendir(path) else { throw FileIOError.system("cannot list", path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    package static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    package static func size(_ path: String) -> Int64? {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : nil
    }
}
