import TallyCore
import UsageLog

/// What `tally synth` generates.
public struct SynthOptions: Sendable {
    /// Events in all, across every synthetic collector.
    public var events: Int
    /// Days the events span, ending at `end`.
    public var days: Int
    public var seed: UInt64
    /// The log directory to write under (one folder per synthetic collector).
    public var outDirectory: String
    /// End of the span, milliseconds since the epoch (exclusive).
    public var end: Int64
    /// Synthetic collectors, each generated on its own task: `<collector.id>-1` … `-N`.
    public var collectors: Int = 2
    /// Segment settings. Ages are measured on the synthetic clock, so the default is day-long segments
    /// (64 MiB at most), written without fsync and gzipped at level 1 for speed.
    public var writer: SegmentWriterOptions

    public init(events: Int, days: Int, seed: UInt64, outDirectory: String, end: Int64) {
        self.events = events
        self.days = days
        self.seed = seed
        self.outDirectory = outDirectory
        self.end = end
        writer = SegmentWriterOptions()
        writer.maxAgeMilliseconds = 86_400_000
        writer.fsync = .never
        writer.gzipLevel = 1
        writer.bufferBytes = 1 << 20
    }
}

/// What one synth run wrote, and where the planted patterns are, so that tests and demos can check the audit finds them.
public struct SynthSummary: Sendable {
    public var events = 0
    public var segments = 0
    public var bytes: Int64 = 0
    public var collectors: [String] = []
    public var firstTimestamp: Int64 = .max
    public var lastTimestamp: Int64 = .min
    public var exactDuplicates = 0
    public var nearDuplicates = 0
    public var upstreamErrors = 0
    /// The key that repeats one prompt after errors, and when the loop starts.
    public var retryLoop: (key: String, start: Int64, repeats: Int)?
    /// The key that runs away, and the span of its burst.
    public var runaway: (key: String, start: Int64, end: Int64, requests: Int)?
}
