import TallyCore
import Testing
import UsageLog

@testable import Collector

@Suite struct MetricsTests {
    static func event(model: String, status: Int, usage: UsageEvent.Usage?) -> UsageEvent {
        UsageEvent(
            id: EventID.make(milliseconds: 1), timestamp: 1, collector: "c", key: "k", provider: "openai", endpoint: .chatCompletions,
            model: model, status: status, outcome: status < 400 ? .ok : .upstreamError, stream: false, usage: usage)
    }

    /// A key holder sending made-up model names must not create a series each: only priced or served models are labels.
    @Test func modelLabelsAreBounded() {
        let metrics = CollectorMetrics(configuredModels: ["house-model"])
        for i in 0..<1_000 { metrics.record(Self.event(model: "made-up-\(i)", status: 404, usage: nil)) }
        metrics.record(Self.event(model: "house-model", status: 400, usage: nil))
        metrics.record(Self.event(model: "gpt-4o-mini-2024-07-18", status: 200, usage: .init(input: 5, output: 1)))
        metrics.record(Self.event(model: "gpt-4o-mini-2024-07-18", status: 500, usage: nil))
        let text = metrics.render()
        let series = text.split(separator: "\n").filter { $0.hasPrefix("tally_requests_total{") }
        #expect(series.count == 4)
        #expect(text.contains(#"model="other",outcome="upstream_error"} 1000"#))
        #expect(text.contains(#"model="house-model",outcome="upstream_error"} 1"#))
        #expect(text.contains(#"model="gpt-4o-mini-2024-07-18",outcome="ok"} 1"#))
        #expect(text.contains(#"model="gpt-4o-mini-2024-07-18",outcome="upstream_error"} 1"#))
        #expect(!text.contains("made-up"))

        // Even served models stop becoming labels past the bound.
        for i in 0..<(CollectorMetrics.maxLearnedModels + 50) {
            metrics.record(Self.event(model: "served-\(i)", status: 200, usage: .init(input: 1, output: 1)))
        }
        let labels = Set(
            metrics.render().split(separator: "\n").filter { $0.hasPrefix("tally_requests_total{") }.compactMap {
                $0.split(separator: "model=\"").last?.split(separator: "\"").first.map(String.init)
            })
        #expect(labels.count <= CollectorMetrics.maxLearnedModels + 2)
    }
}
