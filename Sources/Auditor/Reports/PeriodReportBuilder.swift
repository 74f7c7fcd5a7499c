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
    public static func build(
        ledger: Ledger, config: Config, period: Period, asOf: Int64, isFinal: Bool = false,
        late: LateEvents? = nil
    ) throws(AuditError) -> PeriodReport {
        var calendar = try LocalCalendar.audit(config)
        let start = calendar.start(ofDay: period.firstDay)
        let end = calendar.start(ofDay: period.lastDay + 1)
        let at = min(asOf, end - 1)
        var report = PeriodReport(
            period: period.label, firstDay: Timestamp.formatDate(days: period.firstDay),
            lastDay: Timestamp.formatDate(days: period.lastDay),
            start: start, end: end, timezone: config.audit.timezone, currency: config.currency,
            organisations: config.orgs.map { $0.name ?? $0.id }, asOf: isFinal ? end : at, isFinal: isFinal, late: late)
        report.providerNames = Dictionary(
            config.providers.map { provider in
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
                    report.revocations.append(
                        RevocationRow(at: nil, key: entry.keyID, action: "in_force", reason: entry.reason, until: entry.until))
                }
            }
        }
        return report
    }

    // MARK: Spend

    private static func spend(
        into report: inout PeriodReport, ledger: Ledger, period: Period, calendar: inout LocalCalendar
    ) throws(AuditError) {
        struct Group: Hashable { var day: Int, attr: Int64, provider: Int64, model: Int64 }
        let names = try ledger.names()
        let (attributions, dims) = (names.attributions, names.dims)
        var rows: [Group: AttributionRow] = [:]
        var unpriced: [[String]: UnpricedRow] = [:]
        var quality = DataQuality()
        try ledger.rollups(grouping: [.day, .attribution, .provider, .model], fromDay: period.firstDay, toDay: period.lastDay) { r in
            let group = Group(day: r.day, attr: r.attribution, provider: r.provider, model: r.model)
            let attribution = attributions[group.attr]
            let provider = dims[group.provider] ?? AttributionQuery.unknown
            let model = dims[group.model] ?? AttributionQuery.unknown
            if rows[group] == nil {
                func owner(_ field: KeyPath<Attribution, String>) -> String { AttributionQuery.label(attribution, field) }
                rows[group] = AttributionRow(
                    date: Timestamp.formatDate(days: group.day), dayStart: 0, dayEnd: 0, org: owner(\.org),
                    team: owner(\.team), project: owner(\.project), user: owner(\.user), key: owner(\.key),
                    provider: provider, model: model)
            }
            rows[group]!.requests += r.requests
            rows[group]!.tokens += r.tokens
            rows[group]!.cost += r.cost
            if !r.priced {
                rows[group]!.unpricedRequests += r.requests
                unpriced[[provider, model], default: UnpricedRow(provider: provider, model: model, requests: 0, tokens: .zero)].add(r)
            }
            quality.failedRequests += r.failed
            quality.rejectedRequests += r.rejected
            if attribution?.known != true {
                quality.unknownKeyRequests += r.requests
                quality.unknownKeyCost += r.cost
            }
        }
        // The parts of each row served on a reported tier or priced with notes, and the calls whose price had gaps.
        var gaps: [PriceGapKey: PriceGapRow] = [:]
        for p in try ledger.pricingRollups(fromDay: period.firstDay, toDay: period.lastDay) {
            let group = Group(day: p.day, attr: p.attribution, provider: p.provider, model: p.model)
            let unpricedRequests = p.priced ? 0 : p.requests
            rows[group]?.splits.append(
                PricingSplit(
                    serviceTier: p.serviceTier, notes: p.notes, requests: p.requests, tokens: p.tokens, cost: p.cost,
                    unpricedRequests: unpricedRequests))
            let provider = dims[p.provider] ?? AttributionQuery.unknown
            let model = dims[p.model] ?? AttributionQuery.unknown
            for gap in PriceGapRow.Gap.allCases where p.notes.contains(gap.note) {
                let quantity: Int64 =
                    switch gap {
                    case .serviceTier: p.tokens.input + p.tokens.output
                    case .cacheWrite1h: p.tokens.cacheWrite1h
                    case .webSearch: p.tokens.webSearchRequests
                    }
                let key = PriceGapKey(provider: provider, model: model, serviceTier: p.serviceTier, gap: gap)
                gaps[
                    key,
                    default: PriceGapRow(provider: provider, model: model, serviceTier: p.serviceTier, gap: gap, requests: 0, quantity: 0)
                ]
                .requests += p.requests
                gaps[key]!.quantity += quantity
            }
        }
        report.priceGaps = gaps.values.sorted {
            ($0.provider, $0.model, $0.serviceTier ?? "", $0.gap.rawValue) < ($1.provider, $1.model, $1.serviceTier ?? "", $1.gap.rawValue)
        }

        var dayBounds: [Int: (Int64, Int64)] = [:]
        var list = rows.map { group, row in
            var row = row
            // By name, not by the ledger's ids (which depend on the order segments were ingested in).
            row.splits.sort { ($0.serviceTier ?? "", $0.notes.rawValue) < ($1.serviceTier ?? "", $1.notes.rawValue) }
            if dayBounds[group.day] == nil {
                dayBounds[group.day] = (calendar.start(ofDay: group.day), calendar.start(ofDay: group.day + 1))
            }
            (row.dayStart, row.dayEnd) = dayBounds[group.day]!
            return row
        }
        list.sort { a, b in
            [a.date, a.org, a.team, a.project, a.user, a.key, a.provider, a.model]
                .lexicographicallyPrecedes([b.date, b.org, b.team, b.project, b.user, b.key, b.provider, b.model])
        }
        report.attribution = list
        report.unpriced = unpriced.values.sorted { ($0.requests, $1.provider, $1.model) > ($1.requests, $0.provider, $0.model) }
        let (start, end) = (calendar.start(ofDay: period.firstDay), calendar.start(ofDay: period.lastDay + 1))
        quality.unmetered = try ledger.unmeteredCalls(from: start, to: end).map { u in
            let attribution = attributions[u.attribution]
            return UnmeteredCalls(
                team: AttributionQuery.label(attribution, \.team), key: AttributionQuery.label(attribution, \.key),
                provider: dims[u.provider] ?? AttributionQuery.unknown, requests: u.requests, failed: u.failed)
        }.sorted { ($0.requests, $1.key, $1.provider) > ($1.requests, $0.key, $0.provider) }
        report.dataQuality = quality
    }

    /// The month before: its total, and its spend over as many days as `period` has run by `at`.
    private static func previous(
        ledger: Ledger, period: Period, at: Int64, calendar: inout LocalCalendar
    ) throws(AuditError) -> PreviousPeriod? {
        let before = Period.month(containing: period.firstDay - 1)
        let daysRun = min(calendar.day(of: at), period.lastDay) - period.firstDay + 1
        let sameDay = period.lastDay <= calendar.day(of: at) ? before.lastDay : min(before.lastDay, before.firstDay + daysRun - 1)
        guard let cost = try ledger.cost(fromDay: before.firstDay, toDay: before.lastDay, throughDay: sameDay) else { return nil }
        return PreviousPeriod(period: before.label, total: cost.total, toSamePoint: cost.throughDay)
    }

    // MARK: Budgets

    private static func budgets(into report: inout PeriodReport, ledger: Ledger, config: Config, at: Int64) throws(AuditError) {
        var (statuses, _) = try BudgetEvaluation.statuses(ledger: ledger, config: config, asOf: at)
        _ = try Reallocation.evaluate(&statuses, ledger: ledger, config: config, asOf: at)
        report.budgets = statuses.map { s in
            var s = s
            if at >= s.periodEnd - 1 || at <= s.periodStart {
                s.projected = s.spend
            } else {
                s.projected = Money(picos: s.spend.picos * Int128(s.periodEnd - s.periodStart) / Int128(at - s.periodStart))
            }
            return s
        }
        // Breaches: every 100% crossing the alerts recorded in the period, and the budgets over their limit now.
        let owners = Attribution.owners(config)
        let priority = Set(config.keys.filter(\.priority).map(\.id))
        func breach(
            scope: String, id: String, budgetPeriod: String, label: String, crossedAt: Int64?, spent: Money, limit: Money,
            hard: Bool, covered: Bool
        ) -> BreachRow {
            let keys = owners.values.filter { owner in
                BudgetScope(rawValue: scope).map { BudgetEvaluation.counts(owner, toward: $0, id) } ?? false
            }.map(\.key).sorted()
            let revoked = hard && !covered ? keys.filter { !priority.contains($0) } : []
            let overrides = hard && !covered ? keys.filter { priority.contains($0) } : []
            let action =
                !hard ? "alert_only" : covered ? "covered_by_pool" : !revoked.isEmpty ? "revoked" : !overrides.isEmpty ? "override" : "none"
            return BreachRow(
                scope: scope, id: id, budgetPeriod: budgetPeriod, periodLabel: label, crossedAt: crossedAt, spent: spent,
                limit: limit, hard: hard, action: action, revokedKeys: revoked, overrideKeys: overrides)
        }
        var seen: Set<String> = []
        var rows: [BreachRow] = []
        let hardness = Dictionary(statuses.map { ("\($0.scope.rawValue)/\($0.id)", $0.budget.hard) }, uniquingKeysWith: { a, _ in a })
        let current = Dictionary(statuses.map { ("\($0.scope.rawValue)/\($0.id)/\($0.periodLabel)", $0) }, uniquingKeysWith: { a, _ in a })
        for alert in report.alerts where alert.threshold >= .one {
            let signature = "\(alert.scope.rawValue)/\(alert.id)/\(alert.periodLabel)"
            guard seen.insert(signature).inserted else { continue }
            let now = current[signature]
            rows.append(
                breach(
                    scope: alert.scope.rawValue, id: alert.id, budgetPeriod: alert.period.rawValue, label: alert.periodLabel,
                    crossedAt: alert.crossedAt, spent: now?.spend ?? alert.spend, limit: now?.limit ?? alert.limit,
                    hard: hardness["\(alert.scope.rawValue)/\(alert.id)"] ?? true,
                    covered: now.map { $0.coveredByPool && !$0.isBreached } ?? false))
        }
        for s in statuses where s.isBreached {
            let signature = "\(s.scope.rawValue)/\(s.id)/\(s.periodLabel)"
            guard seen.insert(signature).inserted else { continue }
            rows.append(
                breach(
                    scope: s.scope.rawValue, id: s.id, budgetPeriod: s.budget.period.rawValue, label: s.periodLabel, crossedAt: nil,
                    spent: s.spend, limit: s.limit, hard: s.budget.hard, covered: false))
        }
        report.breaches = rows.sorted {
            ($0.crossedAt ?? .max, $0.scope, $0.id, $0.periodLabel) < ($1.crossedAt ?? .max, $1.scope, $1.id, $1.periodLabel)
        }
    }

    // MARK: What the ledger lists

    private static func ledgerLists(
        into report: inout PeriodReport, ledger: Ledger, config: Config, period: Period, start: Int64,
        end: Int64
    ) throws(AuditError) {
        let label = period.label
        let alerts = try ledger.alerts(from: start, to: end)
        let revocations = try ledger.journal(kinds: ["revoke", "restore"], from: start, to: end).map { entry -> RevocationRow in
            let key = entry.subject.hasPrefix("key ") ? String(entry.subject.dropFirst(4)) : entry.subject
            let (reason, until) = entry.kind == "revoke" ? Enforcement.revokeDetail(entry.detail) : (entry.detail, nil)
            return RevocationRow(
                at: entry.at, key: key, action: entry.kind == "revoke" ? "revoked" : "restored", reason: reason, until: until)
        }
        let reallocation = try ledger.reallocationRows(period: label)
        let quarantine = try ledger.quarantineRows(dataFrom: start, to: end)
        let damaged = try ledger.damagedSegments(dataFrom: start, to: end)
        report.alerts = alerts
        report.revocations = revocations
        report.reallocation = reallocation
        report.quarantine = quarantine
        report.dataQuality.damagedSegments = damaged
        report.waste = try ledger.wasteFindings(period: label)
    }
}

/// The grouping of `price-gaps.csv`.
private struct PriceGapKey: Hashable {
    var provider: String
    var model: String
    var serviceTier: String?
    var gap: PriceGapRow.Gap
}

extension UnpricedRow {
    /// Adds the tokens of a rollup row.
    fileprivate mutating func add(_ r: RollupRow) {
        requests += r.requests
        tokens += r.tokens
    }
}
