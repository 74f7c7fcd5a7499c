import GRDB
import Report
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// Fills a `PeriodReport` for one calendar month from the ledger alone (`docs/reports.md`).
///
/// Spend comes from the daily rollups, so `attribution.csv`, `focus.csv` and the HTML total are the same sums.
/// Budgets are evaluated at the report's clock (the period's last moment once it has ended), with reallocation
/// applied but nothing written. Waste is what the audits stored for the month.
public enum PeriodReportBuilder {
    /// The report of `period` (a month) as of `asOf`, which is held to the period's last millisecond.
    public static func build(ledger: Ledger, config: Config, period: Period, asOf: Int64, isFinal: Bool = false,
                             late: LateEvents? = nil) throws(AuditError) -> PeriodReport {
        var calendar = try LocalCalendar.audit(config)
        let start = calendar.start(ofDay: period.firstDay)
        let end = calendar.start(ofDay: period.lastDay + 1)
        let at = min(asOf, end - 1)
        var report = PeriodReport(
            period: period.label, firstDay: Timestamp.formatDate(days: period.firstDay), lastDay: Timestamp.formatDate(days: period.lastDay),
            start: start, end: end, timezone: config.audit.timezone, currency: config.currency,
            organisations: config.orgs.map { $0.name ?? $0.id }, asOf: isFinal ? end : at, isFinal: isFinal, late: late)
        report.providerNames = Dictionary(config.providers.map { provider in
            // A provider named after its kind is shown by the API's name ("OpenAI"); others by their own name.
            let display = provider.name == provider.kind.rawValue ? provider.kind.displayName : provider.name
            return (provider.name, display)
        }, uniquingKeysWith: { a, _ in a })

        try spend(into: &report, ledger: ledger, period: period, calendar: &calendar)
        report.previous = try previous(ledger: ledger, period: period, at: at, calendar: &calendar)
        try ledgerLists(into: &report, ledger: ledger, config: config, period: period, start: start, end: end)
        try budgets(into: &report, ledger: ledger, config: config, at: at)
        if !isFinal, asOf < end {
            // The list in force now, for the current period.
            if let list = try? RevocationList.read(path: config.resolve(config.collector.revocations)) {
                for entry in list.entries {
                    report.revocations.append(RevocationRow(at: nil, key: entry.keyID, action: "in_force", reason: entry.reason, until: entry.until))
                }
            }
        }
        return report
    }

    // MARK: Spend

    private static func spend(into report: inout PeriodReport, ledger: Ledger, period: Period, calendar: inout LocalCalendar) throws(AuditError) {
        struct Group: Hashable { var day: Int, attr: Int64, provider: Int64, model: Int64 }
        let (rows, unpriced, quality) = try ledger.access { db in
            let (attributions, dims) = try AttributionQuery.names(db)
            var groups: [Group: AttributionRow] = [:]
            var unpriced: [[String]: UnpricedRow] = [:]
            var quality = DataQuality()
            let cursor = try Row.fetchCursor(db, sql: """
                SELECT day, attr, provider, model, priced, requests, failed, rejected, input, output, cached_input, cache_write, reasoning,
                    cost_hi, cost_lo
                FROM rollup_daily WHERE day BETWEEN ? AND ?
                """, arguments: [period.firstDay, period.lastDay])
            while let r = try cursor.next() {
                let group = Group(day: r[0], attr: r[1], provider: r[2], model: r[3])
                let priced: Bool = r[4]
                let requests: Int64 = r[5]
                let cost = Ledger.cost(hi: r[13], lo: r[14])
                let attribution = attributions[group.attr]
                let provider = dims[group.provider] ?? AttributionQuery.unknown
                let model = dims[group.model] ?? AttributionQuery.unknown
                if groups[group] == nil {
                    func owner(_ field: KeyPath<Attribution, String>) -> String { AttributionQuery.label(attribution, field) }
                    groups[group] = AttributionRow(date: Timestamp.formatDate(days: group.day), dayStart: 0, dayEnd: 0, org: owner(\.org),
                                                   team: owner(\.team), project: owner(\.project), user: owner(\.user), key: owner(\.key),
                                                   provider: provider, model: model)
                }
                groups[group]!.requests += requests
                groups[group]!.input += r[8]
                groups[group]!.output += r[9]
                groups[group]!.cachedInput += r[10]
                groups[group]!.cacheWrite += r[11]
                groups[group]!.reasoning += r[12]
                groups[group]!.cost += cost
                if !priced {
                    groups[group]!.unpricedRequests += requests
                    unpriced[[provider, model], default: UnpricedRow(provider: provider, model: model, requests: 0, input: 0, cachedInput: 0,
                                                                    cacheWrite: 0, output: 0, reasoning: 0)].add(r)
                }
                quality.failedRequests += r[6]
                quality.rejectedRequests += r[7]
                if attribution?.known != true {
                    quality.unknownKeyRequests += requests
                    quality.unknownKeyCost += cost
                }
            }
            return (groups, unpriced, quality)
        }
        var dayBounds: [Int: (Int64, Int64)] = [:]
        var list = rows.map { group, row in
            var row = row
            if dayBounds[group.day] == nil { dayBounds[group.day] = (calendar.start(ofDay: group.day), calendar.start(ofDay: group.day + 1)) }
            (row.dayStart, row.dayEnd) = dayBounds[group.day]!
            return row
        }
        list.sort { a, b in
            [a.date, a.org, a.team, a.project, a.user, a.key, a.provider, a.model]
                .lexicographicallyPrecedes([b.date, b.org, b.team, b.project, b.user, b.key, b.provider, b.model])
        }
        report.attribution = list
        report.unpriced = unpriced.values.sorted { ($0.requests, $1.provider, $1.model) > ($1.requests, $0.provider, $0.model) }
        report.dataQuality = quality
    }

    /// The month before: its total, and its spend over as many days as `period` has run by `at`.
    private static func previous(ledger: Ledger, period: Period, at: Int64, calendar: inout LocalCalendar) throws(AuditError) -> PreviousPeriod? {
        let before = Period.month(containing: period.firstDay - 1)
        let daysRun = min(calendar.day(of: at), period.lastDay) - period.firstDay + 1
        let sameDay = period.lastDay <= calendar.day(of: at) ? before.lastDay : min(before.lastDay, before.firstDay + daysRun - 1)
        return try ledger.access { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT COUNT(*),
                    SUM(cost_hi), SUM(cost_lo / 1000000), SUM(cost_lo % 1000000),
                    SUM(CASE WHEN day <= ? THEN cost_hi ELSE 0 END), SUM(CASE WHEN day <= ? THEN cost_lo / 1000000 ELSE 0 END),
                    SUM(CASE WHEN day <= ? THEN cost_lo % 1000000 ELSE 0 END)
                FROM rollup_daily WHERE day BETWEEN ? AND ?
                """, arguments: [sameDay, sameDay, sameDay, before.firstDay, before.lastDay])
            guard let row, (row[0] as Int64) > 0 else { return nil }
            return PreviousPeriod(period: before.label, total: Ledger.summedCost(row, at: 1), toSamePoint: Ledger.summedCost(row, at: 4))
        }
    }

    // MARK: Budgets

    private static func budgets(into report: inout PeriodReport, ledger: Ledger, config: Config, at: Int64) throws(AuditError) {
        var (statuses, _) = try BudgetEvaluation.statuses(ledger: ledger, config: config, asOf: at)
        _ = try Reallocation.evaluate(&statuses, ledger: ledger, config: config, asOf: at)
        report.budgets = statuses.map { s in
            let projected: Money
            if at >= s.periodEnd - 1 || at <= s.periodStart {
                projected = s.spend
            } else {
                projected = Money(picos: s.spend.picos * Int128(s.periodEnd - s.periodStart) / Int128(at - s.periodStart))
            }
            let status: BudgetRow.Status =
                if s.isBreached { s.budget.hard ? .breached : .over }
                else if s.coveredByPool && s.spend >= s.limit { .coveredByPool }
                else if projected >= s.limit { .atRisk }
                else { .ok }
            return BudgetRow(scope: s.scope.rawValue, id: s.id, budgetPeriod: s.budget.period.rawValue, periodLabel: s.periodLabel,
                             hard: s.budget.hard, configuredLimit: s.budget.limit, limit: s.limit, spent: s.spend, projected: projected,
                             status: status)
        }
        // Breaches: every 100% crossing the alerts recorded in the period, and the budgets over their limit now.
        let owners = Attribution.owners(config)
        let priority = Set(config.keys.filter(\.priority).map(\.id))
        func breach(scope: String, id: String, budgetPeriod: String, label: String, crossedAt: Int64?, spent: Money, limit: Money,
                    hard: Bool, covered: Bool) -> BreachRow {
            let keys = owners.values.filter { owner in
                BudgetScope(rawValue: scope).map { BudgetEvaluation.counts(owner, toward: $0, id) } ?? false
            }.map(\.key).sorted()
            let revoked = hard && !covered ? keys.filter { !priority.contains($0) } : []
            let overrides = hard && !covered ? keys.filter { priority.contains($0) } : []
            let action = !hard ? "alert_only" : covered ? "covered_by_pool" : !revoked.isEmpty ? "revoked" : !overrides.isEmpty ? "override" : "none"
            return BreachRow(scope: scope, id: id, budgetPeriod: budgetPeriod, periodLabel: label, crossedAt: crossedAt, spent: spent,
                             limit: limit, hard: hard, action: action, revokedKeys: revoked, overrideKeys: overrides)
        }
        var seen: Set<String> = []
        var rows: [BreachRow] = []
        let hardness = Dictionary(statuses.map { ("\($0.scope.rawValue)/\($0.id)", $0.budget.hard) }, uniquingKeysWith: { a, _ in a })
        let current = Dictionary(statuses.map { ("\($0.scope.rawValue)/\($0.id)/\($0.periodLabel)", $0) }, uniquingKeysWith: { a, _ in a })
        for alert in report.alerts where (try? Ratio(parsing: alert.threshold)).map({ $0 >= (try! Ratio(parsing: "1")) }) ?? false {
            let signature = "\(alert.scope)/\(alert.id)/\(alert.periodLabel)"
            guard seen.insert(signature).inserted else { continue }
            let now = current[signature]
            rows.append(breach(scope: alert.scope, id: alert.id, budgetPeriod: alert.budgetPeriod, label: alert.periodLabel,
                               crossedAt: alert.crossedAt, spent: now?.spend ?? alert.spent, limit: now?.limit ?? alert.limit,
                               hard: hardness["\(alert.scope)/\(alert.id)"] ?? true, covered: now.map { $0.coveredByPool && !$0.isBreached } ?? false))
        }
        for s in statuses where s.isBreached {
            let signature = "\(s.scope.rawValue)/\(s.id)/\(s.periodLabel)"
            guard seen.insert(signature).inserted else { continue }
            rows.append(breach(scope: s.scope.rawValue, id: s.id, budgetPeriod: s.budget.period.rawValue, label: s.periodLabel, crossedAt: nil,
                               spent: s.spend, limit: s.limit, hard: s.budget.hard, covered: false))
        }
        report.breaches = rows.sorted { ($0.crossedAt ?? .max, $0.scope, $0.id, $0.periodLabel) < ($1.crossedAt ?? .max, $1.scope, $1.id, $1.periodLabel) }
    }

    // MARK: What the ledger lists

    private static func ledgerLists(into report: inout PeriodReport, ledger: Ledger, config: Config, period: Period, start: Int64,
                                    end: Int64) throws(AuditError) {
        let label = period.label
        let (alerts, revocations, reallocation, quarantine, damaged) = try ledger.access { db in
            let alerts = try Row.fetchAll(db, sql: """
                SELECT scope, scope_id, period, period_label, threshold, crossed_at, spend, budget_limit, notified_at, notify_error
                FROM alerts WHERE crossed_at >= ? AND crossed_at < ? ORDER BY crossed_at, id
                """, arguments: [start, end]).map { r in
                AlertRow(scope: r[0], id: r[1], budgetPeriod: r[2], periodLabel: r[3], threshold: r[4], crossedAt: r[5],
                         spent: Money(picos: Int128(r[6] as Int64)), limit: Money(picos: Int128(r[7] as Int64)), notifiedAt: r[8], notifyError: r[9])
            }
            let revocations = try Row.fetchAll(db, sql: """
                SELECT at, kind, subject, detail FROM journal WHERE kind IN ('revoke', 'restore') AND at >= ? AND at < ? ORDER BY id
                """, arguments: [start, end]).map { r -> RevocationRow in
                let subject: String = r[2]
                let key = subject.hasPrefix("key ") ? String(subject.dropFirst(4)) : subject
                var reason: String = r[3]
                var until: Int64?
                if (r[1] as String) == "revoke", reason.hasSuffix(")"), let open = reason.ranges(of: " (until ").last {
                    until = Timestamp.parse(reason[open.upperBound..<reason.index(before: reason.endIndex)])
                    reason = String(reason[..<open.lowerBound])
                }
                return RevocationRow(at: r[0], key: key, action: (r[1] as String) == "revoke" ? "revoked" : "restored", reason: reason, until: until)
            }
            var reallocation: [ReallocationRow] = []
            for r in try Row.fetchAll(db, sql: "SELECT team, user, kind, days, amount FROM pool_moves WHERE period = ? ORDER BY team, kind DESC, user",
                                      arguments: [label]) {
                let kind: String = r[2]
                let user: String = r[1]
                reallocation.append(ReallocationRow(kind: kind, team: r[0], from: kind == "release" ? user : "pool", to: kind == "release" ? "pool" : user,
                                                    amount: Money(picos: Int128(r[4] as Int64)), days: kind == "release" ? r[3] : nil))
            }
            for r in try Row.fetchAll(db, sql: "SELECT id, team, from_user, to_user, amount, reason, proposed_at FROM realloc_proposals WHERE period = ? ORDER BY team, id",
                                      arguments: [label]) {
                reallocation.append(ReallocationRow(kind: "proposal", id: r[0], team: r[1], from: r[2], to: r[3], amount: Money(picos: Int128(r[4] as Int64)),
                                                    at: r[6], reason: r[5]))
            }
            for r in try Row.fetchAll(db, sql: """
                SELECT proposal, team, from_user, to_user, amount, approved_by, approved_at FROM realloc_approvals WHERE period = ? ORDER BY id
                """, arguments: [label]) {
                reallocation.append(ReallocationRow(kind: "approval", id: r[0], team: r[1], from: r[2], to: r[3], amount: Money(picos: Int128(r[4] as Int64)),
                                                    at: r[6], by: r[5]))
            }
            let quarantine = try Row.fetchAll(db, sql: """
                SELECT r.started_at, s.path, q.line, q.kind, q.reason, q.length
                FROM quarantine q JOIN segments s ON s.id = q.segment JOIN runs r ON r.id = q.run
                WHERE r.started_at >= ? AND r.started_at < ? ORDER BY q.run, s.path, q.line
                """, arguments: [start, end]).map { r in
                QuarantineRow(at: r[0], segment: r[1], line: r[2], kind: r[3], reason: r[4], length: r[5])
            }
            let damaged = try Row.fetchAll(db, sql: """
                SELECT s.path, s.damage FROM segments s JOIN runs r ON r.id = s.run
                WHERE s.damage IS NOT NULL AND r.started_at >= ? AND r.started_at < ? ORDER BY s.path
                """, arguments: [start, end]).map { DamagedSegment(path: $0[0], damage: $0[1]) }
            return (alerts, revocations, reallocation, quarantine, damaged)
        }
        report.alerts = alerts
        report.revocations = revocations
        report.reallocation = reallocation
        report.quarantine = quarantine
        report.dataQuality.damagedSegments = damaged
        report.waste = try waste(ledger: ledger, label: label)
    }
}

extension PeriodReportBuilder {
    /// The month's stored findings: totals by kind and the costliest few read now, every row read again, in order,
    /// when waste.csv is written. A busy month holds hundreds of thousands of them; none is kept in memory.
    static func waste(ledger: Ledger, label: String) throws(AuditError) -> WasteFindings {
        try ledger.access { db in
            // One pass in stored order: equally costly findings then keep the file's order among the costliest.
            var summary = WasteFindings.Summary()
            // The audit stores a month's rows in waste.csv's order; whether these are is checked on the way, so that
            // writing the file needs no sort (ledgers from older Tallies may break ties otherwise).
            var inOrder = true
            var previous: (kind: Int, cost: Int64, first: Int64, subject: String)?
            let cursor = try Row.fetchCursor(db, sql: "SELECT \(LedgerWasteRows.columns) FROM waste WHERE period = ? ORDER BY rowid",
                                             arguments: [label])
            while let r = try cursor.next() {
                let kind: String = r[0], cost: Int64 = r[11]
                if inOrder, let rank = LedgerWasteRows.kindRank[kind] {
                    let this = (kind: rank, cost: -cost, first: r[6] as Int64, subject: r[1] as String)
                    if let p = previous, (this.kind, this.cost, this.first) != (p.kind, p.cost, p.first)
                        ? (this.kind, this.cost, this.first) < (p.kind, p.cost, p.first)
                        : this.subject.utf8.lexicographicallyPrecedes(p.subject.utf8) {
                        inOrder = false
                    }
                    previous = this
                } else {
                    inOrder = false
                }
                summary.add(kind: kind, cost: Money(picos: Int128(cost)), countsAsWaste: r[12]) { LedgerWasteRows.row(r) }
            }
            return WasteFindings(kinds: summary.kinds, costliest: summary.costliest,
                                 source: LedgerWasteRows(ledger: ledger, label: label, inOrder: inOrder))
        }
    }
}

/// A month's `waste` rows, read from the ledger in waste.csv's order while the file is written: by kind as `WasteKind`
/// lists them, costliest first, then oldest, then by subject.
final class LedgerWasteRows: WasteRowSource {
    static let columns = "kind, subject, model, team, keys, users, first_ts, last_ts, calls, repeats, errors, cost, counts_as_waste, detail"
    /// Kinds in `WasteKind`'s order; a month with a kind this Tally does not know has its rows sorted.
    static let kindRank = Dictionary(uniqueKeysWithValues: WasteKind.allCases.enumerated().map { ($1.rawValue, $0) })
    private static let kindOrder = "CASE kind " + WasteKind.allCases.enumerated().map { "WHEN '\($1.rawValue)' THEN \($0)" }.joined(separator: " ")
        + " ELSE \(WasteKind.allCases.count) END"

    let ledger: Ledger
    let label: String
    /// Whether the rows are stored in the file's order already, as audits store them.
    let inOrder: Bool

    init(ledger: Ledger, label: String, inOrder: Bool) {
        self.ledger = ledger
        self.label = label
        self.inOrder = inOrder
    }

    func forEachRow(_ body: (WasteRow) throws(FileIOError) -> Void) throws(FileIOError) {
        do {
            try ledger.access { db in
                let order = inOrder ? "rowid" : "\(Self.kindOrder), kind, cost DESC, first_ts, subject, rowid"
                let cursor = try Row.fetchCursor(db, sql: "SELECT \(Self.columns) FROM waste WHERE period = ? ORDER BY \(order)", arguments: [label])
                while let r = try cursor.next() { try body(Self.row(r)) }
            }
        } catch {
            // What `body` threw comes back as the ledger's error's cause.
            if let written = error.cause as? FileIOError { throw written }
            throw FileIOError(code: .io, message: "cannot read the \(label) waste findings: \(error.message)")
        }
    }

    /// A row selected as `columns`.
    static func row(_ r: Row) -> WasteRow {
        let keys: String = r[4], users: String = r[5]
        return WasteRow(kind: r[0], subject: r[1], model: r[2], team: r[3],
                        keys: keys.isEmpty ? [] : keys.split(separator: ",").map(String.init),
                        users: users.isEmpty ? [] : users.split(separator: ",").map(String.init),
                        firstSeen: r[6], lastSeen: r[7], calls: r[8], repeats: r[9], errors: r[10],
                        cost: Money(picos: Int128(r[11] as Int64)), countsAsWaste: r[12], detail: r[13])
    }
}

extension UnpricedRow {
    /// Adds the tokens of a `rollup_daily` row (columns as `PeriodReportBuilder.spend` selects them).
    fileprivate mutating func add(_ r: Row) {
        requests += r[5]
        input += r[8]
        output += r[9]
        cachedInput += r[10]
        cacheWrite += r[11]
        reasoning += r[12]
    }
}
