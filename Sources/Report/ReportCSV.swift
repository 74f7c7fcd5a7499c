import TallyCore

/// The CSV files of a period's report (`docs/reports.md`): RFC 4180, UTF-8, a header row, CRLF line ends. Money is
/// exact with at least six decimals, times are UTC to the second, and every text cell that came from outside is
/// guarded against formula injection. Rows are in a stable order, so a diff between two runs is a change in the data.
extension PeriodReport {
    /// `attribution.csv`: one row per day × org × team × project × user × key × provider × model. Its cost column sums
    /// exactly to the report's total; a row whose calls are all unpriced has an empty cost.
    public func attributionCSV() -> String {
        var out = ""
        CSV.append(["date", "org", "team", "project", "user", "key", "provider", "model", "requests", "input_tokens",
                    "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens", "cost", "currency",
                    "unpriced_requests"], to: &out)
        let currency = CSV.text(currency)
        for r in attribution {
            CSV.append([r.date, CSV.text(r.org), CSV.text(r.team), CSV.text(r.project), CSV.text(r.user), CSV.text(r.key),
                        CSV.text(r.provider), CSV.text(r.model), String(r.requests), String(r.input), String(r.cachedInput),
                        String(r.cacheWrite), String(r.output), String(r.reasoning), r.isUnpriced ? "" : CSV.money(r.cost), currency,
                        String(r.unpricedRequests)], to: &out)
        }
        return out
    }

    /// `budgets.csv`: every budget in the period the report's clock falls in.
    public func budgetsCSV() -> String {
        var out = ""
        CSV.append(["scope", "id", "budget_period", "period", "hard", "configured_limit", "limit", "spent", "utilisation",
                    "projected", "status", "currency"], to: &out)
        for b in budgets {
            CSV.append([b.scope, CSV.text(b.id), b.budgetPeriod, b.periodLabel, b.hard ? "true" : "false", CSV.money(b.configuredLimit),
                        CSV.money(b.limit), CSV.money(b.spent), Self.ratio(b.spent, b.limit), CSV.money(b.projected), b.status.rawValue,
                        CSV.text(currency)], to: &out)
        }
        return out
    }

    /// `alerts.csv`: each threshold crossing recorded in the period, oldest first.
    public func alertsCSV() -> String {
        var out = ""
        CSV.append(["crossed_at", "scope", "id", "budget_period", "period", "threshold", "spent", "limit", "currency", "notified_at",
                    "notify_error"], to: &out)
        for a in alerts {
            CSV.append([CSV.time(a.crossedAt), a.scope, CSV.text(a.id), a.budgetPeriod, a.periodLabel, a.threshold, CSV.money(a.spent),
                        CSV.money(a.limit), CSV.text(currency), CSV.time(a.notifiedAt), CSV.text(a.notifyError ?? "")], to: &out)
        }
        return out
    }

    /// `breaches.csv`: budgets that reached their limit, what was revoked and which priority keys overrode it.
    public func breachesCSV() -> String {
        var out = ""
        CSV.append(["crossed_at", "scope", "id", "budget_period", "period", "hard", "spent", "limit", "currency", "action",
                    "revoked_keys", "override_keys"], to: &out)
        for b in breaches {
            CSV.append([CSV.time(b.crossedAt), b.scope, CSV.text(b.id), b.budgetPeriod, b.periodLabel, b.hard ? "true" : "false",
                        CSV.money(b.spent), CSV.money(b.limit), CSV.text(currency), b.action, CSV.text(b.revokedKeys.joined(separator: " ")),
                        CSV.text(b.overrideKeys.joined(separator: " "))], to: &out)
        }
        return out
    }

    /// `revocations.csv`: keys revoked and restored in the period, then those revoked when the report was made.
    public func revocationsCSV() -> String {
        var out = ""
        CSV.append(["at", "key", "action", "reason", "until"], to: &out)
        for r in revocations {
            CSV.append([CSV.time(r.at), CSV.text(r.key), r.action, CSV.text(r.reason), CSV.time(r.until)], to: &out)
        }
        return out
    }

    /// `waste.csv`: every duplicate cluster, retry loop and runaway episode, costliest first within each kind.
    public func wasteCSV() throws(FileIOError) -> String {
        var text = ""
        try wasteCSV { (bytes: [UInt8]) throws(FileIOError) in text += String(decoding: bytes, as: UTF8.self) }
        return text
    }

    /// `waste.csv` handed to `write` a piece of about a megabyte at a time: a busy month's file is a hundred
    /// megabytes, and it is never whole in memory.
    func wasteCSV(_ write: ([UInt8]) throws(FileIOError) -> Void) throws(FileIOError) {
        let piece = 1 << 20
        var out = CSVBuffer(capacity: piece + (piece >> 2))
        for name in ["kind", "subject", "model", "team", "keys", "users", "first_seen", "last_seen", "calls", "repeats", "errors",
                     "cost", "currency", "counts_as_waste", "detail"] { out.raw(name) }
        out.endRow()
        let currency = currency
        try waste.forEach { (w: WasteRow) throws(FileIOError) in
            out.raw(w.kind)
            out.text(w.subject)
            out.text(w.model)
            out.text(w.team)
            out.text(w.keys.count == 1 ? w.keys[0] : w.keys.joined(separator: " "))
            out.text(w.users.count == 1 ? w.users[0] : w.users.joined(separator: " "))
            out.time(w.firstSeen)
            out.time(w.lastSeen)
            out.integer(w.calls)
            out.integer(w.repeats)
            out.integer(w.errors)
            out.money(w.cost)
            out.text(currency)
            out.raw(w.countsAsWaste ? "true" : "false")
            out.text(w.detail)
            out.endRow()
            if out.bytes.count >= piece {
                try write(out.bytes)
                out.bytes.removeAll(keepingCapacity: true)
            }
        }
        try write(out.bytes)
    }

    /// `reallocation.csv`: pool releases and draws, proposals and approvals.
    public func reallocationCSV() -> String {
        var out = ""
        CSV.append(["kind", "id", "team", "from", "to", "amount", "currency", "days_away", "at", "by", "reason"], to: &out)
        for r in reallocation {
            CSV.append([r.kind, CSV.text(r.id), CSV.text(r.team), CSV.text(r.from), CSV.text(r.to), CSV.money(r.amount), CSV.text(currency),
                        r.days.map(String.init) ?? "", CSV.time(r.at), CSV.text(r.by), CSV.text(r.reason)], to: &out)
        }
        return out
    }

    /// `unpriced.csv`: models that had calls with usage but no price, and their tokens.
    public func unpricedCSV() -> String {
        var out = ""
        CSV.append(["provider", "model", "requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
                    "reasoning_tokens"], to: &out)
        for u in unpriced {
            CSV.append([CSV.text(u.provider), CSV.text(u.model), String(u.requests), String(u.input), String(u.cachedInput),
                        String(u.cacheWrite), String(u.output), String(u.reasoning)], to: &out)
        }
        return out
    }

    /// `quarantine.csv`: log lines set aside by audits in the period (their text stays in the ledger).
    public func quarantineCSV() -> String {
        var out = ""
        CSV.append(["found_at", "segment", "line", "kind", "reason", "length"], to: &out)
        for q in quarantine {
            CSV.append([CSV.time(q.at), CSV.text(q.segment), String(q.line), CSV.text(q.kind), CSV.text(q.reason), String(q.length)], to: &out)
        }
        return out
    }

    /// `spent / limit` rounded to four decimals (`0.8312`); empty for a zero limit.
    static func ratio(_ spent: Money, _ limit: Money) -> String {
        guard limit.picos > 0 else { return "" }
        return Money(picos: spent.picos * Money.scale / limit.picos).formatted(places: 4)
    }
}
