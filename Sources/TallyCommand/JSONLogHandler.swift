import Foundation
import Logging
import TallyCore

/// One JSON object per line on standard error: `{"ts":…,"level":…,"msg":…, metadata…}`.
/// Metadata keys are written as they are (`collector.provider`); nothing here ever carries a secret.
public struct JSONLogHandler: LogHandler {
    public let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var out: [UInt8] = []
        out.append(contentsOf: #"{"ts":""#.utf8)
        Timestamp.append(milliseconds: Timestamp.now(), to: &out)
        out.append(contentsOf: #"","level":"#.utf8)
        JSONWriter.appendString(event.level.rawValue, to: &out)
        out.append(contentsOf: #","msg":"#.utf8)
        JSONWriter.appendString(event.message.description, to: &out)
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            out.append(UInt8(ascii: ","))
            JSONWriter.appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.appendString("\(value)", to: &out)
        }
        out.append(contentsOf: "}\n".utf8)
        FileHandle.standardError.write(Data(out))
    }
}

/// The stderr logger the CLI's long-running commands use.
public enum CLILogging {
    public static func logger(label: String, level: Logger.Level) -> Logger {
        var handler = JSONLogHandler(label: label)
        handler.logLevel = level
        return Logger(label: label) { _ in handler }
    }
}
