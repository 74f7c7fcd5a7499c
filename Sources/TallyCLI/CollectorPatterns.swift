import Collector
import TallyLedger

/// The collector's PCRE2 compiler, as a check the config loader can call.
enum CollectorPatterns {
    static func problem(_ pattern: String) -> String? {
        PCRE2Pattern.problem(with: pattern)
    }
}
