import Foundation
import Hummingbird
import Logging
import Report
import Synchronization
import TallyConfig
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// Alerts posted to a Slack-compatible webhook on loopback: once each, retried, and kept for later when it is down.
@Suite("Alert webhook")
struct WebhookTests {
    typealias F = AuditFixture

    /// A webhook that answers the first `failures` posts with 500, then 200, and keeps the bodies it accepted.
    final class Receiver: Sendable {
        let failures: Int
        let posts = Mutex<[String]>([])
        let seen = Mutex(0)
        init(failures: Int) { self.failures = failures }

        func run(onPort: @escaping @Sendable (Int) async -> Void) async throws {
            let router = Router()
            router.post("/hook") { request, context -> Response in
                let body = try await request.body.collect(upTo: 1 << 20)
                let n = self.seen.withLock {
                    $0 += 1
                    return $0
                }
                guard n > self.failures else { return Response(status: .internalServerError) }
                self.posts.withLock { $0.append(String(buffer: body)) }
                return Response(status: .ok)
            }
            let app = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: { await onPort($0.localAddress!.port!) },
                logger: {
                    var l = Logger(label: "hook")
                    l.logLevel = .critical
                    return l
                }())
            try await app.run()
        }
    }

    static let yaml = BudgetTests.yaml() + "\n  webhook_url_env: TEST_WEBHOOK"

    func withReceiver(failures: Int, _ body: (Receiver, String) async throws -> Void) async throws {
        let receiver = Receiver(failures: failures)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            group.addTask { try await receiver.run { continuation.yield($0) } }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            try await body(receiver, "http://127.0.0.1:\(port)/hook")
            group.cancelAll()
        }
    }

    func audit(_ f: F, url: String?, asOf: String, failFast: Bool = false) async throws -> Audit.Outcome {
        var options = Audit.Options(asOf: Timestamp.parse(asOf)!, environment: url.map { ["TEST_WEBHOOK": $0] } ?? [:], apply: true)
        options.webhookLimits.backoff = .milliseconds(10)
        options.webhookLimits.timeout = .seconds(2)
        if failFast { options.webhookLimits.attempts = 1 }
        return try await Audit.run(config: f.config, options: options)
    }

    @Test func eachNewCrossingIsPostedOnceAfterARetry() async throws {
        let f = try F(yaml: Self.yaml)
        defer { f.remove() }
        try f.segment([BudgetTests.call("2026-11-10T10:00:00Z")])
        try await withReceiver(failures: 1) { receiver, url in
            let first = try await audit(f, url: url, asOf: "2026-11-10T12:00:00Z")
            #expect(first.webhook == WebhookDelivery(posted: first.alerts.count, pending: 0, problems: []))
            #expect(first.alerts.count == 5)  // alice's day budget (120%) at 50, 80, 90 and 100%; the team's month budget (60%) at 50%
            let posts = receiver.posts.withLock { $0 }
            #expect(posts.count == first.alerts.count)
            let decoded = try posts.map { try JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
            #expect(decoded.allSatisfy { $0.keys.sorted() == ["text"] && $0["text"]!.hasPrefix("Tally: ") })
            #expect(decoded.contains { $0["text"]!.contains("user alice crossed 100% of its 0.50 USD day budget for 2026-11-10") })
            // A second run posts nothing again.
            let second = try await audit(f, url: url, asOf: "2026-11-10T12:05:00Z")
            #expect(second.webhook.posted == 0 && receiver.posts.withLock { $0.count } == posts.count)
        }
    }

    @Test func aWebhookThatIsDownHoldsNothingUpAndItsAlertsWaitForTheNextRun() async throws {
        let f = try F(yaml: Self.yaml)
        defer { f.remove() }
        try f.segment([BudgetTests.call("2026-11-10T10:00:00Z")])
        // Nothing listens on port 9 (discard) here: refused at once.
        let down = try await audit(f, url: "http://127.0.0.1:9/hook", asOf: "2026-11-10T12:00:00Z", failFast: true)
        #expect(down.webhook.posted == 0 && down.webhook.pending == down.alerts.count)
        #expect(down.webhook.problems.allSatisfy { !$0.contains("127.0.0.1") && !$0.contains("/hook") })
        #expect(down.webhook.problems.first?.hasPrefix("the webhook could not be reached") == true)
        let attempts: [Int] = try f.query("SELECT notify_attempts FROM alerts ORDER BY id")
        #expect(attempts == [1, 0, 0, 0, 0])  // after the first failure the others were not tried
        // Unset, the audit says so and keeps them.
        let unset = try await audit(f, url: nil, asOf: "2026-11-10T12:01:00Z")
        #expect(unset.webhook.problems == ["$TEST_WEBHOOK is not set: \(down.alerts.count) alert(s) wait to be posted"])
        try await withReceiver(failures: 0) { receiver, url in
            let later = try await audit(f, url: url, asOf: "2026-11-10T12:10:00Z")
            #expect(later.alerts.isEmpty && later.webhook.posted == down.alerts.count)
            #expect(receiver.posts.withLock { $0.count } == down.alerts.count)
        }
    }
}
