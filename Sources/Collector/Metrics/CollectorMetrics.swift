import Synchronization
import TallyCore
import UsageLog

/// The collector's counters, rendered in the Prometheus text format at `/metrics`.
/// Labels are ids, names and outcomes only: never a key secret or prompt text.
///
/// Label values are bounded, so that no key holder can grow the series without end: `model` is a model the config
/// prices or one a provider reported serving (at most `maxLearnedModels` of those), and `other` for anything else,
/// such as the made-up names of calls the provider refused.
public final class CollectorMetrics: Sendable {
    struct RequestLabels: Hashable {
        var provider: String
        var endpoint: String
        var model: String
        var outcome: String
    }

    struct TokenLabels: Hashable {
        var provider: String
        var model: String
        var kind: String
    }

    struct Histogram {
        static let bounds: [Double] = [
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
        ]
        var counts = [UInt64](repeating: 0, count: bounds.count)
        var sum = 0.0
        var count: UInt64 = 0

        mutating func observe(_ seconds: Double) {
            for (i, bound) in Self.bounds.enumerated() where seconds <= bound { counts[i] += 1 }
            sum += seconds
            count += 1
        }
    }

    struct State {
        /// Models providers reported serving, which become label values.
        var servedModels: Set<String> = []
        var requests: [RequestLabels: UInt64] = [:]
        var tokens: [TokenLabels: UInt64] = [:]
        var upstreamLatency = Histogram()
        var addedLatency = Histogram()
    }

    private let state = Mutex(State())
    public let logUnavailable = Atomic<Int>(0)
    public let abandonedWhileWaiting = Atomic<Int>(0)
    public let reloads = Atomic<Int>(0)
    public let reloadFailures = Atomic<Int>(0)
    public let revokedKeys = Atomic<Int>(0)
    public let logWriteErrors = Atomic<Int>(0)
    public let configReloadFailures = Atomic<Int>(0)
    public let redactionFailures = Atomic<Int>(0)
    public let upstreamRetries = Atomic<Int>(0)

    /// Models the config names, which are label values from the start.
    private let configuredModels: Set<String>
    /// How many models learned from providers' answers become label values; later ones count as `other`.
    static let maxLearnedModels = 256
    /// The label value of a model that is not one of them.
    static let otherModel = "other"

    public init(configuredModels: Set<String> = []) {
        self.configuredModels = configuredModels
    }

    /// Counts one finished call and its tokens.
    public func record(_ event: UsageEvent) {
        state.withLock { s in
            // A model the provider reported with usage for an answered call exists: it may become a label value.
            let learned = event.usage != nil && event.status < 400 && !event.usageEstimated && s.servedModels.count < Self.maxLearnedModels
            if learned { s.servedModels.insert(event.model) }
            let model =
                learned || configuredModels.contains(event.model) || s.servedModels.contains(event.model) ? event.model : Self.otherModel
            s.requests[
                RequestLabels(
                    provider: event.provider, endpoint: event.endpoint.rawValue, model: model, outcome: event.outcome.rawValue),
                default: 0] += 1
            if let u = event.usage {
                // One statement per kind rather than a loop over an array of them: no array is made per call.
                func add(_ kind: String, _ n: Int64) {
                    if n > 0 { s.tokens[TokenLabels(provider: event.provider, model: model, kind: kind), default: 0] += UInt64(n) }
                }
                add("input", u.input)
                add("output", u.output)
                add("cached_input", u.cachedInput)
                add("cache_write", u.cacheWrite)
                add("reasoning", u.reasoning)
            }
        }
    }

    /// Time the provider took, from sending the request to its response head.
    public func observeUpstream(seconds: Double) {
        state.withLock { $0.upstreamLatency.observe(seconds) }
    }

    /// Time the collector itself added before and after the provider.
    public func observeAdded(seconds: Double) {
        state.withLock { $0.addedLatency.observe(seconds) }
    }

    /// The Prometheus text exposition (version 0.0.4), with the log queue's depth and reserved slots as they are now.
    public func render(queueDepth: Int = 0, reservedSlots: Int = 0) -> String {
        let s = state.withLock { $0 }
        var out = ""
        out += "# HELP tally_requests_total Calls through the collector.\n# TYPE tally_requests_total counter\n"
        for (labels, n) in s.requests.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            out +=
                "tally_requests_total{provider=\"\(escape(labels.provider))\",endpoint=\"\(escape(labels.endpoint))\",model=\"\(escape(labels.model))\",outcome=\"\(labels.outcome)\"} \(n)\n"
        }
        out +=
            "# HELP tally_tokens_total Tokens reported by providers, by kind (input includes cached_input and cache_write; output includes reasoning).\n# TYPE tally_tokens_total counter\n"
        for (labels, n) in s.tokens.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            out +=
                "tally_tokens_total{provider=\"\(escape(labels.provider))\",model=\"\(escape(labels.model))\",kind=\"\(labels.kind)\"} \(n)\n"
        }
        out += histogram("tally_upstream_latency_seconds", "Time from sending a request upstream to its response head.", s.upstreamLatency)
        out += histogram("tally_added_latency_seconds", "Time the collector added to a call, outside the provider.", s.addedLatency)
        out += gauge("tally_event_queue_depth", "Usage events waiting for the log writer or being written.", queueDepth)
        out += gauge("tally_event_queue_reserved", "Log queue slots held by calls in progress.", reservedSlots)
        out += counter(
            "tally_log_unavailable_total", "Calls refused (503, not forwarded) because the usage log could not take them.",
            logUnavailable.load(ordering: .relaxed))
        out += counter(
            "tally_log_wait_abandoned_total", "Calls whose client left while they waited for room in the log queue (not forwarded).",
            abandonedWhileWaiting.load(ordering: .relaxed))
        out += counter("tally_revocation_reloads_total", "Revocation lists loaded.", reloads.load(ordering: .relaxed))
        out += counter(
            "tally_revocation_reload_failures_total", "Revocation files refused (the previous list stayed in force).",
            reloadFailures.load(ordering: .relaxed))
        out += gauge("tally_revoked_keys", "Keys on the revocation list in force.", revokedKeys.load(ordering: .relaxed))
        out += counter(
            "tally_log_write_errors_total", "Failed attempts to write the usage log (retried).", logWriteErrors.load(ordering: .relaxed))
        out += counter(
            "tally_config_reload_failures_total", "SIGHUP config reloads refused (the keys in force stayed).",
            configReloadFailures.load(ordering: .relaxed))
        out += counter(
            "tally_redaction_failures_total", "Prompts redaction could not finish on (no preview was kept).",
            redactionFailures.load(ordering: .relaxed))
        out += counter(
            "tally_upstream_retries_total",
            "Calls sent again on a new connection because the provider closed a kept-alive one before reading them.",
            upstreamRetries.load(ordering: .relaxed))
        return out
    }

    private func histogram(_ name: String, _ help: String, _ h: Histogram) -> String {
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (i, bound) in Histogram.bounds.enumerated() {
            out += "\(name)_bucket{le=\"\(bound)\"} \(h.counts[i])\n"
        }
        out += "\(name)_bucket{le=\"+Inf\"} \(h.count)\n\(name)_sum \(h.sum)\n\(name)_count \(h.count)\n"
        return out
    }

    private func counter(_ name: String, _ help: String, _ value: Int) -> String {
        "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n"
    }

    private func gauge(_ name: String, _ help: String, _ value: Int) -> String {
        "# HELP \(name) \(help)\n# TYPE \(name) gauge\n\(name) \(value)\n"
    }

    private func escape(_ value: String) -> String {
        var out = ""
        for ch in value {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out
    }
}
