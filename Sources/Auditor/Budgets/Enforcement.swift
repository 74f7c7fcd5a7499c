import Report
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// What the audit decided about keys: the revocation list it wrote, and the breaches it could not enforce.
public struct EnforcementResult: Sendable {
    public var statuses: [BudgetStatus]
    public var list: RevocationList
    /// Breached budgets that revoke nothing because the key is `priority: true` (the emergency bypass), by key.
    public var overrides: [(key: String, status: BudgetStatus)]
    /// Runaway keys not revoked because they are `priority: true`.
    public var runawayOverrides: [WasteFinding]
    /// Away releases, pool draws, proposals, and approvals made by this run.
    public var reallocation: ReallocationResult
    /// Whether the file was rewritten (it is left alone when nothing changed); in a replay, whether it would have been.
    public var rewritten: Bool
    public var path: String
    /// What the statuses were summed from, for `Alerts`.
    var spendByKeyAndDay: [String: [Int: Money]]
    /// Why the list on disk could not be read, when it was rebuilt from the ledger instead.
    public var rebuilt: String? = nil
}

/// Turns budget breaches and expiries into the revocation list the collector enforces (`docs/revocations.md`).
///
/// The list is recomputed from the ledger and the config on every run, so a raised budget, a new period or a key
/// moved to another team lifts a revocation on the next run. Entries of kind `manual` (or of a kind this Tally does
/// not know) that another tool or a person put in the file are kept as they are.
public enum Enforcement {
    /// - Parameters:
    ///   - restoring: the key a `tally keys restore` is lifting in this run: its entries written by others are dropped
    ///     now (and only now; the journal says who lifted them).
    ///   - writeList: false for a replay, which works out the list (and journals it in a transaction it rolls back)
    ///     but leaves the file alone.
    public static func run(
        ledger: Ledger, config: Config, asOf: Int64, waste: WasteResult? = nil, restoring: String? = nil, writeList: Bool = true
    ) throws(AuditError) -> EnforcementResult {
        var (statuses, spendByKeyAndDay) = try BudgetEvaluation.statuses(ledger: ledger, config: config, asOf: asOf)
        let reallocation = try Reallocation.apply(to: &statuses, ledger: ledger, config: config, asOf: asOf)
        try journalBudgets(config, ledger: ledger, asOf: asOf)
        let path = config.resolve(config.collector.revocations)
        // A list that cannot be read (a hand edit with a bad checksum, a cut copy) is rebuilt, never a reason to stop
        // enforcing: what it held is what the journal last recorded it held.
        var existing: RevocationList?
        var rebuilt: String?
        do { existing = try RevocationList.read(path: path) } catch {
            existing = try recoveredList(ledger: ledger, asOf: asOf)
            rebuilt = "\(error)"
            try ledger.write { t in
                try t.appendJournal(
                    at: asOf, kind: "list", subject: "revocation list",
                    detail: "rebuilt from the ledger: the file could not be read (\(error))")
            }
        }

        var chosen: [String: RevocationList.Entry] = [:]
        func propose(_ entry: RevocationList.Entry) {
            // One entry a key: the one that lasts longest (until further notice beats any date).
            if let current = chosen[entry.keyID], (current.until ?? .max) >= (entry.until ?? .max) { return }
            chosen[entry.keyID] = entry
        }
        var overrides: [(key: String, status: BudgetStatus)] = []
        var runawayOverrides: [WasteFinding] = []
        let owners = Attribution.owners(config)
        for status in statuses where status.isBreached {
            for key in config.keys {
                guard let owner = owners[key.id], BudgetEvaluation.counts(owner, toward: status.scope, status.id), status.budget.hard else {
                    continue
                }
                if key.priority {
                    overrides.append((key.id, status))
                    continue
                }
                propose(
                    RevocationList.Entry(
                        keyID: key.id, reason: "budget: " + describe(status, currency: config.currency), until: status.periodEnd))
            }
        }
        // Runaway keys, for `runaway.action: revoke`: until the cool-down after their last call over the limit. Without
        // a fresh scan (`tally keys`), the last audit's findings stand.
        if config.audit.runaway.action == .revoke {
            let runaways: [WasteFinding]
            if let waste {
                runaways = waste.findings.filter { $0.kind == .runaway }
            } else {
                runaways = try WasteScan.storedRunaways(ledger: ledger)
            }
            for finding in runaways where finding.lastSeen + config.audit.runaway.cooldownMs > asOf {
                guard let key = config.keys.first(where: { $0.id == finding.subject }) else { continue }
                if key.priority {
                    runawayOverrides.append(finding)
                    continue
                }
                propose(
                    RevocationList.Entry(
                        keyID: key.id,
                        reason: "runaway: \(finding.detail) from \(Timestamp.format(milliseconds: finding.firstSeen)) "
                            + "to \(Timestamp.format(milliseconds: finding.lastSeen)) (\(finding.cost.brief) \(config.currency))",
                        until: finding.lastSeen + config.audit.runaway.cooldownMs))
            }
        }
        for key in config.keys {
            if let expires = key.expires, expires <= asOf {
                propose(
                    RevocationList.Entry(
                        keyID: key.id, reason: "expired: the key expired on \(Timestamp.format(milliseconds: expires))", until: nil))
            }
        }
        // What people decided: `tally keys revoke` until restored; and every entry the audit does not derive (manual
        // ones, kinds it does not know), written by a person or a security tool, stays until its `until` or until
        // `tally keys restore` lifts it, whatever decisions the key had before. What the audit revoked is recomputed
        // above; it owns only those kinds.
        let decisions = try ledger.latestKeyDecisions()
        for (key, decision) in decisions where decision.action == .revoke && (decision.until ?? .max) > asOf {
            propose(RevocationList.Entry(keyID: key, reason: "manual: \(decision.reason) (by \(decision.by))", until: decision.until))
        }
        for entry in existing?.entries ?? [] where entry.kind == .manual && (entry.until ?? .max) > asOf {
            guard entry.keyID != restoring else { continue }
            propose(entry)
        }
        let list = RevocationList(entries: chosen.values.sorted { $0.keyID < $1.keyID })

        let rewritten = existing != list || rebuilt != nil
        // The journal mirrors the list: every entry that appears (derived, decided, or written by another tool, the
        // first time the audit sees it) gets a row, every one that goes a restore row, so that a list that cannot be
        // read can be rebuilt from it.
        try journalChanges(from: try recoveredList(ledger: ledger, asOf: asOf, keepLapsed: true), to: list, ledger: ledger, asOf: asOf)
        if rewritten, writeList {
            do {
                try list.write(
                    to: path,
                    comments: [
                        "written by tally audit at \(Timestamp.format(milliseconds: Timestamp.now())) (as of \(Timestamp.format(milliseconds: asOf)))"
                    ])
            } catch {
                throw AuditError(.io, "cannot write the revocation list \(path): \(error.message)", cause: error)
            }
        }
        return EnforcementResult(
            statuses: statuses, list: list, overrides: overrides, runawayOverrides: runawayOverrides,
            reallocation: reallocation, rewritten: rewritten, path: path, spendByKeyAndDay: spendByKeyAndDay, rebuilt: rebuilt)
    }

    /// The list as the journal last recorded it (each key's latest `revoke` row not followed by a `restore`, still in
    /// force at `asOf`): what a list that cannot be read held, as far as Tally knows.
    static func recoveredList(ledger: Ledger, asOf: Int64, keepLapsed: Bool = false) throws(AuditError) -> RevocationList {
        let latest = try ledger.write { t in try t.latestJournal(kinds: ["revoke", "restore"]) }
        var entries: [RevocationList.Entry] = []
        for (subject, entry) in latest where entry.kind == "revoke" && subject.hasPrefix("key ") {
            let (reason, until) = revokeDetail(entry.detail)
            guard keepLapsed || (until ?? .max) > asOf else { continue }
            entries.append(RevocationList.Entry(keyID: String(subject.dropFirst(4)), reason: reason, until: until))
        }
        return RevocationList(entries: entries.sorted { $0.keyID < $1.keyID })
    }

    /// A `revoke` journal row's detail: `<reason> (until <time>)` or `<reason> (until further notice)`.
    static func revokeDetail(_ entry: RevocationList.Entry) -> String {
        "\(entry.reason) (until \(entry.until.map { Timestamp.format(milliseconds: $0) } ?? "further notice"))"
    }

    /// The reason and until of a `revoke` row's detail (`revokeDetail`); a detail without the suffix is all reason.
    static func revokeDetail(_ detail: String) -> (reason: String, until: Int64?) {
        guard detail.hasSuffix(")"), let open = detail.ranges(of: " (until ").last else { return (detail, nil) }
        let text = detail[open.upperBound..<detail.index(before: detail.endIndex)]
        return (String(detail[..<open.lowerBound]), text == "further notice" ? nil : Timestamp.parse(text))
    }

    /// A journal row for each budget the config sets, changes or drops since the journal last saw it.
    static func journalBudgets(_ config: Config, ledger: Ledger, asOf: Int64) throws(AuditError) {
        var now: [String: String] = [:]
        func note(_ scope: BudgetScope, _ id: String, _ budget: Budget?) {
            guard let budget else { return }
            now["\(scope.rawValue) \(id)"] =
                "\(budget.limit.exact) \(config.currency) a \(budget.period.rawValue), \(budget.hard ? "hard" : "soft")"
        }
        for org in config.orgs { note(.org, org.id, org.budget) }
        for team in config.teams { note(.team, team.id, team.budget) }
        for user in config.users { note(.user, user.id, user.budget) }
        for key in config.keys { note(.key, key.id, key.budget) }
        try ledger.write { transaction in
            let journalled = try transaction.latestJournal(kinds: ["budget"])
            for (subject, detail) in now.sorted(by: { $0.key < $1.key }) where journalled[subject]?.detail != detail {
                try transaction.appendJournal(at: asOf, kind: "budget", subject: subject, detail: detail)
            }
            for (subject, entry) in journalled.sorted(by: { $0.key < $1.key }) where now[subject] == nil && entry.detail != "none" {
                try transaction.appendJournal(at: asOf, kind: "budget", subject: subject, detail: "none")
            }
        }
    }

    /// A journal row for each key the new list revokes (or revokes for another reason) and each it no longer lists.
    static func journalChanges(from old: RevocationList, to new: RevocationList, ledger: Ledger, asOf: Int64) throws(AuditError) {
        let before = Dictionary(old.entries.map { ($0.keyID, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(new.entries.map { ($0.keyID, $0) }, uniquingKeysWith: { a, _ in a })
        guard before != after else { return }
        try ledger.write { transaction in
            for (key, entry) in after.sorted(by: { $0.key < $1.key }) where before[key] != entry {
                try transaction.appendJournal(at: asOf, kind: "revoke", subject: "key \(key)", detail: revokeDetail(entry))
            }
            for key in before.keys.sorted() where after[key] == nil {
                try transaction.appendJournal(
                    at: asOf, kind: "restore", subject: "key \(key)", detail: "no longer revoked: \(before[key]!.reason)")
            }
        }
    }

    /// `team search spent 104% of its 5000.00 USD month budget for 2026-11`.
    public static func describe(_ status: BudgetStatus, currency: String) -> String {
        var limit = status.budget.limit.brief
        if status.limit != status.budget.limit {
            var parts: [String] = []
            if status.released > .zero { parts.append("\(status.released.brief) released for days away") }
            if status.movedOut > .zero { parts.append("\(status.movedOut.brief) moved out") }
            if status.movedIn > .zero { parts.append("\(status.movedIn.brief) moved in") }
            if status.drawn > .zero { parts.append("\(status.drawn.brief) drawn from the team pool") }
            limit = "\(status.limit.brief) (\(status.budget.limit.brief) with \(parts.joined(separator: ", ")))"
        }
        let spent =
            status.estimated > .zero
            ? "\(status.spend.brief), \(status.estimated.brief) of it estimated for unpriced calls" : status.spend.brief
        return "\(status.scope.rawValue) \(status.id) spent \(status.percent)% (\(spent)) of its "
            + "\(limit) \(currency) \(status.budget.period.rawValue) budget for \(status.periodLabel)"
    }
}
