import Report
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// Spend per budget from the ledger, in the config's calendar periods, as the config stands now.
///
/// A key's spend counts toward its own budget, its user's, its team's (the project's team, else the user's) and its
/// org's, following the current config: a key moved to another team counts toward the new team from the next run.
/// Whole days before today come from `rollup_daily`; today comes from `events` up to the audit's clock, so a replay
/// with `--as-of` sees exactly what had happened by then.
public enum BudgetEvaluation {
    /// Every budget's status, and the spend per key and local day they were summed from (from the start of the
    /// earliest current period to today), which the alerts reuse.
    static func statuses(
        ledger: Ledger, config: Config, asOf: Int64
    ) throws(AuditError)
        -> (statuses: [BudgetStatus], spendByKeyAndDay: [String: [Int: Money]])
    {
        var calendar = try LocalCalendar.audit(config)
        let today = calendar.day(of: asOf)
        var budgets: [(BudgetScope, String, Budget)] = []
        for org in config.orgs { if let b = org.budget { budgets.append((.org, org.id, b)) } }
        for team in config.teams { if let b = team.budget { budgets.append((.team, team.id, b)) } }
        for user in config.users { if let b = user.budget { budgets.append((.user, user.id, b)) } }
        for key in config.keys { if let b = key.budget { budgets.append((.key, key.id, b)) } }
        guard !budgets.isEmpty else { return ([], [:]) }

        let periods = Dictionary(uniqueKeysWithValues: BudgetPeriod.allCases.map { ($0, Self.period($0, containing: today)) })
        let earliest = periods.values.map(\.firstDay).min()!
        // Spend per key and local day, from the earliest period start to today.
        let (perKeyDay, estimatedPerKeyDay) = try ledger.spendByKeyAndDay(
            fromDay: earliest, today: today, todayStart: calendar.start(ofDay: today), asOf: asOf)

        // Owners of each key under the current config.
        let owners = Attribution.owners(config)
        let statuses = budgets.map { scope, id, budget in
            let period = periods[budget.period]!
            var spend = Money.zero
            var estimated = Money.zero
            for (key, days) in perKeyDay {
                guard let owner = owners[key], counts(owner, toward: scope, id) else { continue }
                for (day, money) in days where day >= period.firstDay && day <= period.lastDay { spend += money }
                for (day, money) in estimatedPerKeyDay[key] ?? [:] where day >= period.firstDay && day <= period.lastDay {
                    estimated += money
                }
            }
            return BudgetStatus(
                scope: scope, id: id, budget: budget, firstDay: period.firstDay, lastDay: period.lastDay,
                periodLabel: period.label, periodStart: calendar.start(ofDay: period.firstDay),
                periodEnd: calendar.start(ofDay: period.lastDay + 1), spend: spend, estimated: estimated)
        }
        return (statuses, perKeyDay)
    }

    /// Whether spend of a key with these owners counts toward the budget of `scope` `id`.
    static func counts(_ owner: Attribution, toward scope: BudgetScope, _ id: String) -> Bool {
        switch scope {
        case .key: owner.key == id
        case .user: owner.user == id
        case .team: owner.team == id
        case .org: owner.org == id
        }
    }

    /// The calendar period of kind `kind` holding local day `day`.
    static func period(_ kind: BudgetPeriod, containing day: Int) -> Period {
        switch kind {
        case .day: return Period(firstDay: day, lastDay: day, label: Timestamp.formatDate(days: day))
        case .week:
            let monday = day - (Period.isoWeekday(day) - 1)
            return Period(firstDay: monday, lastDay: monday + 6, label: Period.isoWeekLabel(day))
        case .month: return Period.month(containing: day)
        }
    }
}
