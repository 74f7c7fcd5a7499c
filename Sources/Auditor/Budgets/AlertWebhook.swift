import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// What posting alerts to the webhook did in this run.
public struct WebhookDelivery: Sendable, Equatable {
    public var posted = 0
    /// Alerts still waiting (failed this run, or left for the next because time ran out).
    public var pending = 0
    /// Why posts failed, without the URL (it is a secret).
    public var problems: [String] = []
}

/// Posts each recorded alert once to the Slack-compatible webhook named by `audit.webhook_url_env`, as
/// `{"text": "..."}`. Each post has a timeout and is retried a few times on network errors, 429 and 5xx; the whole
/// delivery stops starting posts after a deadline, so a dead webhook never holds the audit (and its lock) for long.
/// An alert that could not be posted stays pending in the ledger and is tried again by the next runs, up to
/// `maxAttempts` runs.
public enum AlertWebhook {
    public struct Limits: Sendable {
        public var timeout: Duration = .seconds(5)
        public var attempts = 3
        public var backoff: Duration = .milliseconds(500)
        public var deadline: Duration = .seconds(20)
        public init() {}
    }

    static let maxAttempts = 10
    static let unreachablePrefix = "the webhook could not be reached"

    public static func deliver(
        ledger: Ledger, config: Config, environment: [String: String], currency: String,
        limits: Limits = Limits()
    ) async throws(AuditError) -> WebhookDelivery {
        guard let variable = config.audit.webhookURLEnv else { return WebhookDelivery() }
        let pending = try ledger.undeliveredAlerts(maxAttempts: maxAttempts)
        guard !pending.isEmpty else { return WebhookDelivery() }
        guard let text = environment[variable], !text.isEmpty else {
            return WebhookDelivery(
                pending: pending.count, problems: ["$\(variable) is not set: \(pending.count) alert(s) wait to be posted"])
        }
        guard let url = URL(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
            return WebhookDelivery(
                pending: pending.count, problems: ["$\(variable) does not hold an http(s) URL: \(pending.count) alert(s) wait to be posted"]
            )
        }
        var delivery = WebhookDelivery()
        let started = ContinuousClock.now
        var unreachable = false
        for (id, alert) in pending {
            // After a deadline, or once the webhook could not be reached at all, the rest wait for the next run.
            guard ContinuousClock.now - started < limits.deadline, !unreachable else {
                delivery.pending += 1
                continue
            }
            let problem = await post(text: "Tally: " + Alerts.describe(alert, currency: currency), to: text, limits: limits)
            if let problem {
                try ledger.markAlertFailed(id: id, problem: problem)
            } else {
                try ledger.markAlertPosted(id: id, at: Timestamp.now())
            }
            if let problem {
                unreachable = problem.hasPrefix(Self.unreachablePrefix)
                delivery.pending += 1
                if !delivery.problems.contains(problem) { delivery.problems.append(problem) }
            } else {
                delivery.posted += 1
            }
        }
        if unreachable { delivery.problems.append("\(delivery.pending) alert(s) left for the next run") }
        if delivery.pending > 0, delivery.problems.isEmpty {
            delivery.problems.append("the webhook took too long: \(delivery.pending) alert(s) left for the next run")
        }
        return delivery
    }

    /// Posts one message; nil when the webhook accepted it, else why not (never the URL).
    static func post(text: String, to url: String, limits: Limits) async -> String? {
        struct Body: Encodable { var text: String }
        guard let body = try? JSONEncoder().encode(Body(text: text)) else { return "the message could not be encoded" }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "tally-audit")
        request.body = .bytes(ByteBuffer(bytes: body))
        var problem = ""
        for attempt in 1...max(1, limits.attempts) {
            if attempt > 1 { try? await Task.sleep(for: limits.backoff * (1 << (attempt - 2))) }
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: TimeAmount(limits.timeout))
                _ = try? await response.body.collect(upTo: 64 * 1024)
                let status = Int(response.status.code)
                if (200..<300).contains(status) { return nil }
                problem = "the webhook answered HTTP \(status)"
                // Retrying a refusal will not help; rate limits and server errors may pass.
                if status != 429 && status < 500 { return problem }
            } catch {
                problem = "\(Self.unreachablePrefix) (\(Self.kind(of: error)))"
            }
        }
        return problem
    }

    /// The error's kind without its details, which may carry the host.
    static func kind(of error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "timed out"
            default: return "HTTP client error"
            }
        }
        return String(describing: type(of: error))
    }
}
