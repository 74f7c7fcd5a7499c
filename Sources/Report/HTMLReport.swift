import TallyCore

/// `report.html`: one self-contained page (no scripts, fonts, images or styles from elsewhere) for an executive: the
/// period's figures on one screen, then the sections behind them. Every string from a log or a config is escaped.
/// Prints on A4 and Letter, one section a page.
public struct HTMLReport: TextReportFile {
    public let name = "report.html"

    public init() {}

    public func render(_ report: PeriodReport) -> String { Self.render(report) }

    /// The page for `report`.
    public static func render(_ report: PeriodReport) -> String {
        var page = Page(report: report)
        return page.render()
    }

    /// `<`, `>`, `&`, `"` and `'` as entities: text from outside shows as text, inside elements and attributes.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters other than tab and line feed would only confuse a reader.
                if scalar.value < 0x20 && scalar != "\t" && scalar != "\n" || (scalar.value >= 0x7F && scalar.value < 0xA0) {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// Colours that stay apart for readers with colour-blindness (Okabe and Ito), then grey for the rest.
    static let palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]
    static let otherColour = "#9A9A9A"
}

/// Totals of a group of attribution rows.
struct Tally {
    var cost = Money.zero
    var requests: Int64 = 0
    var tokens: Int64 = 0
    var unpriced: Int64 = 0

    mutating func add(_ row: AttributionRow) {
        cost += row.cost
        requests += row.requests
        tokens += row.tokens.input + row.tokens.output
        unpriced += row.unpricedRequests
    }
}

private struct Page {
    let report: PeriodReport
    let total: Money
    var out = ""

    init(report: PeriodReport) {
        self.report = report
        self.total = report.total
    }

    // MARK: Formatting

    func e(_ text: String) -> String { HTMLReport.escape(text) }
    func money(_ value: Money) -> String { value.grouped }
    func count(_ value: Int64) -> String { SpendBreakdown.grouped(value) }
    func percent(_ fraction: Double, places: Int = 1) -> String {
        guard fraction.isFinite else { return "–" }
        let scaled = (fraction * 100 * pow10(places)).rounded() / pow10(places)
        return places == 0 ? "\(Int(scaled))%" : "\(formatFixed(scaled, places))%"
    }
    func plural(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
    /// Whole percent, or one decimal below 10% so that a small share does not read as nothing.
    func utilisation(_ fraction: Double) -> String { percent(fraction, places: fraction < 0.1 && fraction > 0 ? 1 : 0) }
    func pow10(_ n: Int) -> Double { (0..<n).reduce(1.0) { r, _ in r * 10 } }
    func formatFixed(_ value: Double, _ places: Int) -> String {
        let factor = pow10(places)
        let whole = Int64((abs(value) * factor).rounded())
        let integer = whole / Int64(factor)
        var fraction = String(whole % Int64(factor))
        while fraction.count < places { fraction = "0" + fraction }
        return (value < 0 && whole != 0 ? "-" : "") + "\(integer)" + (places > 0 ? "." + fraction : "")
    }
    func share(_ part: Money, of whole: Money) -> Double {
        whole.picos > 0 ? Double(part.picos) / Double(whole.picos) : 0
    }
    func time(_ ms: Int64?) -> String {
        guard let ms else { return "" }
        return CSV.time(ms).replacing("T", with: " ").replacing("Z", with: " UTC")
    }
    var currency: String { e(report.currency) }
    /// `2026-11-18 00:13–00:29`, or `2026-11-11 08:21 – 11-12 16:23` across days (UTC).
    func span(_ from: Int64, _ to: Int64) -> String {
        let a = CSV.time(from)
        let b = CSV.time(to)
        let day = a.prefix(10)
        let start = a.dropFirst(11).prefix(5)
        let end = b.dropFirst(11).prefix(5)
        return b.hasPrefix(day) ? "\(day) \(start)–\(end)" : "\(day) \(start) – \(b.dropFirst(5).prefix(5)) \(end)"
    }

    // MARK: Page

    mutating func render() -> String {
        let title = "AI spend \(report.period)" + (report.organisations.isEmpty ? "" : " — " + report.organisations.joined(separator: ", "))
        out += """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="generator" content="Tally">
            <title>\(e(title))</title>
            <style>\(Self.css)</style>
            </head>
            <body>
            <main>

            """
        header(title)
        summary()
        dailyChart()
        topTables()
        budgets()
        waste()
        reallocation()
        breaches()
        dataQuality()
        out += """
            <footer><p>Made by Tally from its ledger. Figures in \(currency); money on this page is rounded to cents, the CSV files \
            beside it are exact. Days are in \(e(report.timezone)).</p></footer>
            </main>
            </body>
            </html>

            """
        return out
    }

    mutating func header(_ title: String) {
        let state: String
        if report.isFinal {
            state = "<span class=\"badge final\">Final</span> The period closed on \(e(time(report.end)))."
        } else {
            state =
                "<span class=\"badge open\">In progress</span> Figures up to \(e(time(report.asOf))), \(percent(report.elapsed, places: 0)) of the period."
        }
        out += """
            <header>
            <h1>\(e(title))</h1>
            <p class="sub">\(e(report.firstDay)) to \(e(report.lastDay)) (\(e(report.timezone))). \(state)</p>

            """
        if let late = report.late {
            out += """
                <p class="notice" role="note">\(count(late.requests)) late calls (\(money(late.cost)) \(currency)) for this period \
                arrived after its final report and are included here; first found \(e(time(late.foundAt))).</p>

                """
        }
        if let correction = report.correction {
            let sign = correction.change >= .zero ? "+" : "−"
            let magnitude = correction.change >= .zero ? correction.change : -correction.change
            out += """
                <p class="notice" role="note">Corrected: \(count(correction.calls)) calls of this period were priced again after its \
                final report (a price appeared or was corrected), \(sign)\(money(magnitude)) \(currency) (exactly \(sign)\(e(magnitude.exact))); \
                included here, last on \(e(time(correction.at))). The ledger's journal says which prices.</p>

                """
        }
        out += "</header>\n"
    }

    // MARK: One screen

    mutating func summary() {
        let projected = report.projectedTotal
        let wasteTotal = report.wasteTotal
        let breached = report.budgets.filter { $0.state == .breached || $0.state == .over }.count
        let atRisk = report.budgets.filter { $0.state == .atRisk }.count
        let revokedNow = report.revocations.filter { $0.action == "in_force" }.count
        let revokedInPeriod = Set(report.revocations.filter { $0.action == "revoked" }.map(\.key)).count
        let unpricedCalls = report.unpriced.reduce(Int64(0)) { $0 + $1.requests }

        var change = "<p class=\"kpi-note\">No earlier period in the ledger.</p>"
        if let previous = report.previous {
            if previous.toSamePoint.picos > 0 {
                let delta = Double((total - previous.toSamePoint).picos) / Double(previous.toSamePoint.picos)
                let arrow = delta >= 0 ? "▲" : "▼"
                let point =
                    report.isFinal
                    ? "\(e(previous.period)) (\(money(previous.total)))"
                    : "the same point of \(e(previous.period)) (\(money(previous.toSamePoint)))"
                change = "<p class=\"kpi-note \(delta >= 0 ? "up" : "down")\">\(arrow) \(percent(abs(delta))) against \(point)</p>"
            } else {
                change =
                    "<p class=\"kpi-note\">No spend in \(e(previous.period)) by the same day to compare with (its total: \(money(previous.total))).</p>"
            }
        }
        var budgetValue = "–"
        var budgetNote = "No budgets are set."
        let orgBudgets = report.budgets.filter { $0.scope == .org && $0.budget.period == .month }
        if let top = orgBudgets.max(by: { $0.utilisation < $1.utilisation }) {
            budgetValue = utilisation(top.utilisation)
            budgetNote =
                "of org \(e(top.id))'s \(money(top.limit)) month budget; \(breached) over, \(atRisk) at risk of \(report.budgets.count) budgets"
        } else if !report.budgets.isEmpty {
            budgetValue = "\(breached) over"
            budgetNote = "\(atRisk) at risk, of \(report.budgets.count) budgets"
        }

        out += """
            <section class="summary" aria-labelledby="summary-h">
            <h2 id="summary-h">At a glance</h2>
            <div class="kpis">
            <div class="kpi"><h3>Spend</h3><p class="kpi-value">\(money(total)) <small>\(currency)</small></p>\(change)
            <p class="kpi-note exact">Exact: <span data-exact-total>\(CSV.money(total))</span> (the sum of attribution.csv)</p></div>
            <div class="kpi"><h3>Projected for the period</h3><p class="kpi-value">\(money(projected)) <small>\(currency)</small></p>
            <p class="kpi-note">\(report.isFinal || report.elapsed >= 1 ? "The period is over: this is the total." : "At the pace so far, over \(percent(report.elapsed, places: 0)) of the period.")</p></div>
            <div class="kpi"><h3>Budget utilisation</h3><p class="kpi-value">\(budgetValue)</p><p class="kpi-note">\(budgetNote)</p></div>
            <div class="kpi"><h3>Waste</h3><p class="kpi-value">\(money(wasteTotal)) <small>\(currency)</small></p>
            <p class="kpi-note">\(percent(share(wasteTotal, of: total))) of spend: repeated prompts, retry loops, runaway agents</p></div>
            <div class="kpi\(breached + revokedNow > 0 ? " alert" : "")"><h3>Breaches and revocations</h3><p class="kpi-value">\(report.breaches.count) <small>breaches</small></p>
            <p class="kpi-note">\(plural(revokedInPeriod, "key")) revoked in the period, \(revokedNow) revoked now</p></div>
            <div class="kpi\(unpricedCalls > 0 ? " warn" : "")"><h3>Unpriced calls</h3><p class="kpi-value">\(count(unpricedCalls))</p>
            <p class="kpi-note">\(unpricedCalls > 0 ? "Not in the spend: \(report.unpriced.count) models have no price." : "Every call with usage was priced.")</p></div>
            </div>
            </section>

            """
    }

    // MARK: Spend per day

    mutating func dailyChart() {
        var teamTotals: [String: Money] = [:]
        var days: [String: (start: Int64, byTeam: [String: Money])] = [:]
        for row in report.attribution {
            teamTotals[row.team, default: .zero] += row.cost
            days[row.date, default: (row.dayStart, [:])].byTeam[row.team, default: .zero] += row.cost
        }
        // Every day of the period, including days without calls.
        let allDays = Self.dates(from: report.firstDay, to: report.lastDay)
        let ranked = teamTotals.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map(\.key)
        let shown = Array(ranked.prefix(HTMLReport.palette.count))
        let hasOther = ranked.count > shown.count
        let series = shown + (hasOther ? ["other teams"] : [])
        func value(_ day: String, _ team: String) -> Money {
            guard let byTeam = days[day]?.byTeam else { return .zero }
            if team == "other teams" && hasOther { return byTeam.filter { !shown.contains($0.key) }.reduce(.zero) { $0 + $1.value } }
            return byTeam[team] ?? .zero
        }
        let dayTotals = allDays.map { day in series.reduce(Money.zero) { $0 + value(day, $1) } }
        let peak = dayTotals.max() ?? .zero
        let (scaleTop, divisions) = Self.axisScale(Double(peak.picos) / Double(Money.scale))

        let width = 760.0
        let height = 280.0
        let left = 64.0
        let right = 12.0
        let top = 12.0
        let bottom = 40.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let slot = plotWidth / Double(max(allDays.count, 1))
        let barWidth = max(2, slot * 0.72)
        var svg = ""
        svg +=
            "<svg class=\"chart\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-labelledby=\"daily-title daily-desc\" xmlns=\"http://www.w3.org/2000/svg\">\n"
        svg += "<title id=\"daily-title\">Spend per day by team, \(e(report.period))</title>\n"
        svg +=
            "<desc id=\"daily-desc\">Stacked bars, one a day; the table below the chart gives the same figures. Highest day: \(money(peak)) \(currency).</desc>\n"
        for i in 0...divisions {
            let v = scaleTop * Double(i) / Double(divisions)
            let y = top + plotHeight - plotHeight * Double(i) / Double(divisions)
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(width - right))\" y1=\"\(f(y))\" y2=\"\(f(y))\" class=\"grid\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" class=\"axis\" text-anchor=\"end\">\(Self.axisLabel(v))</text>\n"
        }
        let labelEvery = allDays.count > 16 ? 5 : 1
        for (index, day) in allDays.enumerated() {
            let x = left + slot * Double(index) + (slot - barWidth) / 2
            var y = top + plotHeight
            for (s, team) in series.enumerated() {
                let amount = value(day, team)
                guard amount.picos > 0, scaleTop > 0 else { continue }
                let h = plotHeight * (Double(amount.picos) / Double(Money.scale)) / scaleTop
                y -= h
                let colour = s < shown.count ? HTMLReport.palette[s] : HTMLReport.otherColour
                svg +=
                    "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(barWidth))\" height=\"\(f(h))\" fill=\"\(colour)\"><title>\(e(day)) \(e(team)): \(money(amount)) \(currency)</title></rect>"
            }
            if index % labelEvery == 0 || index == allDays.count - 1 && allDays.count <= 16 {
                svg +=
                    "<text x=\"\(f(left + slot * Double(index) + slot / 2))\" y=\"\(f(top + plotHeight + 16))\" class=\"axis\" text-anchor=\"middle\">\(e(String(day.suffix(5))))</text>"
            }
            svg += "\n"
        }
        svg +=
            "<line x1=\"\(f(left))\" x2=\"\(f(width - right))\" y1=\"\(f(top + plotHeight))\" y2=\"\(f(top + plotHeight))\" class=\"baseline\"/>\n"
        if !report.isFinal, report.elapsed < 1 {
            // Where the figures stop: the days after it have not happened yet.
            let x = left + plotWidth * report.elapsed
            svg += "<line x1=\"\(f(x))\" x2=\"\(f(x))\" y1=\"\(f(top))\" y2=\"\(f(top + plotHeight))\" class=\"now\"/>"
            svg += "<text x=\"\(f(x + 4))\" y=\"\(f(top + 10))\" class=\"axis\">now</text>\n"
        }
        svg += "</svg>\n"

        var legend = "<ul class=\"legend\" aria-hidden=\"true\">"
        for (s, team) in series.enumerated() {
            let colour = s < shown.count ? HTMLReport.palette[s] : HTMLReport.otherColour
            legend += "<li><span class=\"swatch\" style=\"background:\(colour)\"></span>\(e(team))</li>"
        }
        legend += "</ul>\n"

        var table =
            "<details class=\"chart-data\"><summary>The figures behind the chart</summary>\n<table>\n<caption>Spend per day by team, \(currency)</caption>\n<thead><tr><th scope=\"col\">Day</th>"
        for team in series { table += "<th scope=\"col\" class=\"num\">\(e(team))</th>" }
        table += "<th scope=\"col\" class=\"num\">Total</th></tr></thead>\n<tbody>\n"
        for (index, day) in allDays.enumerated() {
            table += "<tr><th scope=\"row\">\(e(day))</th>"
            for team in series { table += "<td class=\"num\">\(money(value(day, team)))</td>" }
            table += "<td class=\"num\">\(money(dayTotals[index]))</td></tr>\n"
        }
        table += "</tbody>\n</table>\n</details>\n"

        out += """
            <section aria-labelledby="daily-h">
            <h2 id="daily-h">Spend per day, by team</h2>
            \(report.attribution.isEmpty ? "<p>No calls in this period yet.</p>\n" : svg + legend + table)</section>

            """
    }

    func f(_ value: Double) -> String { formatFixed(value, 1) }

    /// `2026-11-01` … `2026-11-30`.
    static func dates(from first: String, to last: String) -> [String] {
        guard let a = Timestamp.parseDate(first), let b = Timestamp.parseDate(last), a <= b, b - a < 400 else { return [] }
        return (a...b).map { Timestamp.formatDate(days: $0) }
    }

    /// The axis for a chart whose highest bar is `value`: the smallest 1, 2, 2.5 or 5 × 10ⁿ at or above it, and a number of
    /// gridlines that gives round labels (a top of 250 is cut in five steps of 50, not four of 62.5); exact to the cent
    /// from a top of 0.10 up.
    static func axisScale(_ value: Double) -> (top: Double, divisions: Int) {
        guard value > 0 else { return (1, 4) }
        var magnitude = 1.0
        while magnitude * 10 <= value { magnitude *= 10 }
        while magnitude > value { magnitude /= 10 }
        for step in [1.0, 2.0, 2.5, 5.0] where magnitude * step >= value {
            return (magnitude * step, step == 2 ? 4 : 5)
        }
        return (magnitude * 10, 5)
    }

    static func axisLabel(_ value: Double) -> String {
        if value >= 10_000 { return "\(Int((value / 1000).rounded()))k" }
        if value >= 10 || value == 0 { return "\(Int(value.rounded()))" }
        return String(Int((value * 100).rounded()) / 100) + "." + String(format2(Int((value * 100).rounded()) % 100))
    }

    static func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    // MARK: Top lists

    mutating func topTables() {
        func group(_ by: (AttributionRow) -> String) -> [(String, Tally)] {
            var groups: [String: Tally] = [:]
            for row in report.attribution { groups[by(row), default: Tally()].add(row) }
            return groups.sorted { ($0.value.cost, $1.key) > ($1.value.cost, $0.key) }
        }
        out += "<section aria-labelledby=\"top-h\">\n<h2 id=\"top-h\">Where the money went</h2>\n<div class=\"grid2\">\n"
        for (title, rows) in [
            ("Teams", group { $0.team }), ("Projects", group { $0.project }), ("Users", group { $0.user }),
            ("Models", group { $0.provider + " / " + $0.model }),
        ] {
            out += "<table class=\"top\">\n<caption>Top \(title.lowercased()) (\(rows.count) in all)</caption>\n"
            out +=
                "<thead><tr><th scope=\"col\">\(title.dropLast())</th><th scope=\"col\" class=\"num\">Spend</th><th scope=\"col\" class=\"num\">Share</th><th scope=\"col\" class=\"num\">Requests</th></tr></thead>\n<tbody>\n"
            for (name, tally) in rows.prefix(10) {
                let fraction = share(tally.cost, of: total)
                out +=
                    "<tr><th scope=\"row\">\(e(name))</th><td class=\"num\">\(money(tally.cost))\(tally.unpriced > 0 ? " <abbr title=\"some calls unpriced\">+?</abbr>" : "")</td>"
                out +=
                    "<td class=\"num\"><span class=\"share\"><span style=\"width:\(f(min(100, fraction * 100)))%\"></span></span>\(percent(fraction))</td>"
                out += "<td class=\"num\">\(count(tally.requests))</td></tr>\n"
            }
            if rows.count > 10 {
                let rest = rows.dropFirst(10).reduce(Tally()) {
                    var t = $0
                    t.cost += $1.1.cost
                    t.requests += $1.1.requests
                    return t
                }
                out +=
                    "<tr class=\"rest\"><th scope=\"row\">\(rows.count - 10) more</th><td class=\"num\">\(money(rest.cost))</td><td class=\"num\">\(percent(share(rest.cost, of: total)))</td><td class=\"num\">\(count(rest.requests))</td></tr>\n"
            }
            out += "</tbody>\n</table>\n"
        }
        out += "</div>\n</section>\n\n"
    }

    // MARK: Budgets

    mutating func budgets() {
        out += "<section aria-labelledby=\"budgets-h\">\n<h2 id=\"budgets-h\">Budgets</h2>\n"
        guard !report.budgets.isEmpty else {
            out += "<p>The config sets no budgets.</p>\n</section>\n\n"
            return
        }
        out +=
            "<table class=\"budgets\">\n<thead><tr><th scope=\"col\">Budget</th><th scope=\"col\">Period</th><th scope=\"col\" class=\"num\">Limit</th><th scope=\"col\" class=\"num\">Spent</th><th scope=\"col\">Utilisation</th><th scope=\"col\" class=\"num\">Projected</th><th scope=\"col\">Status</th></tr></thead>\n<tbody>\n"
        let order: [String: Int] = ["org": 0, "team": 1, "user": 2, "key": 3]
        for b in report.budgets.sorted(by: { (order[$0.scope.rawValue] ?? 9, $0.id) < (order[$1.scope.rawValue] ?? 9, $1.id) }) {
            let u = b.utilisation
            let statusText: String =
                switch b.state {
                case .ok: "ok"
                case .atRisk: "at risk"
                case .coveredByPool: "covered by pool"
                case .over: "over (soft)"
                case .breached: "breached"
                }
            let limitNote = b.limit != b.budget.limit ? " <small>(set \(money(b.budget.limit)))</small>" : ""
            out +=
                "<tr class=\"\(b.state.rawValue)\"><th scope=\"row\">\(e(b.scope.rawValue)) \(e(b.id))\(b.budget.hard ? "" : " <small>soft</small>")</th>"
            out +=
                "<td>\(e(b.periodLabel))</td><td class=\"num\">\(money(b.limit))\(limitNote)</td><td class=\"num\">\(money(b.spend))\(b.estimated > .zero ? " <abbr title=\"includes \(money(b.estimated)) \(currency) estimated for calls without a price\">est.</abbr>" : "")</td>"
            out +=
                "<td><span class=\"bar\" role=\"img\" aria-label=\"\(utilisation(u)) used\"><span class=\"fill \(b.state.rawValue)\" style=\"width:\(f(min(100, u * 100)))%\"></span></span> \(utilisation(u))</td>"
            out +=
                "<td class=\"num\">\(money(b.projected ?? b.spend))</td><td><span class=\"status \(b.state.rawValue)\">\(statusText)</span></td></tr>\n"
        }
        out += "</tbody>\n</table>\n</section>\n\n"
    }

    // MARK: Waste

    mutating func waste() {
        out += "<section aria-labelledby=\"waste-h\">\n<h2 id=\"waste-h\">Waste</h2>\n"
        let kinds: [(WasteKind, String, String)] = [
            (WasteKind.exactDuplicate, "Repeated prompts (exact duplicates)", "the repeats' cost"),
            (WasteKind.nearDuplicate, "Near-duplicate prompts", "reported only, unless the config counts them"),
            (WasteKind.retryLoop, "Retry loops", "no: their repeats are mostly duplicates already counted"),
            (WasteKind.runaway, "Runaway agents", "no: the spend of keys over their rate limits"),
        ]
        out +=
            "<table class=\"waste-kinds\">\n<thead><tr><th scope=\"col\">Kind</th><th scope=\"col\" class=\"num\">Findings</th><th scope=\"col\" class=\"num\">Cost</th><th scope=\"col\">In the waste total</th></tr></thead>\n<tbody>\n"
        let totals = report.waste.kinds
        let top = report.waste.costliest
        for (kind, title, otherwise) in kinds {
            let isCounted = totals[kind]?.countsAsWaste ?? (kind == .exactDuplicate)
            out +=
                "<tr><th scope=\"row\">\(title)</th><td class=\"num\">\(count(totals[kind]?.findings ?? 0))</td><td class=\"num\">\(money(totals[kind]?.cost ?? .zero))</td><td>\(isCounted ? "yes" : otherwise)</td></tr>\n"
        }
        out +=
            "<tr class=\"total\"><th scope=\"row\">Waste total</th><td></td><td class=\"num\">\(money(report.wasteTotal))</td><td>\(percent(share(report.wasteTotal, of: total))) of spend</td></tr>\n"
        out += "</tbody>\n</table>\n"
        if top.isEmpty {
            out += "<p>No waste found in this period.</p>\n"
        } else {
            out += "<table class=\"waste\">\n<caption>The costliest findings (all of them are in waste.csv)</caption>\n"
            out +=
                "<thead><tr><th scope=\"col\">Kind</th><th scope=\"col\">Prompt or key</th><th scope=\"col\">Team</th><th scope=\"col\">Model</th><th scope=\"col\">Keys</th><th scope=\"col\" class=\"num\">Calls</th><th scope=\"col\" class=\"num\">Cost</th><th scope=\"col\">Seen (UTC)</th></tr></thead>\n<tbody>\n"
            for w in top {
                out +=
                    "<tr><td class=\"nowrap\">\(e(w.kind.rawValue.replacing("_", with: " ")))</td><td><code>\(e(w.subject))</code></td><td>\(e(w.team))</td><td>\(e(w.model))</td>"
                out +=
                    "<td>\(e(w.keys.prefix(3).joined(separator: ", ")))\(w.keys.count > 3 ? " +\(w.keys.count - 3)" : "")</td><td class=\"num\">\(count(w.calls))</td>"
                out += "<td class=\"num\">\(money(w.cost))</td><td class=\"nowrap\">\(e(span(w.firstSeen, w.lastSeen)))</td></tr>\n"
            }
            out += "</tbody>\n</table>\n"
        }
        out += "</section>\n\n"
    }

    // MARK: Reallocation

    mutating func reallocation() {
        out += "<section aria-labelledby=\"realloc-h\">\n<h2 id=\"realloc-h\">Reallocation</h2>\n"
        guard !report.reallocation.isEmpty else {
            out += "<p>No pool moves, proposals or approvals in this period.</p>\n</section>\n\n"
            return
        }
        out +=
            "<table class=\"realloc\">\n<thead><tr><th scope=\"col\">What</th><th scope=\"col\">Team</th><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\" class=\"num\">Amount</th><th scope=\"col\">Notes</th></tr></thead>\n<tbody>\n"
        let names = ["release": "away release", "draw": "pool draw", "proposal": "proposal", "approval": "approved move"]
        for r in report.reallocation {
            var notes: [String] = []
            if !r.id.isEmpty { notes.append("<code>\(e(r.id))</code>") }
            if let days = r.days { notes.append("\(days) days away") }
            if !r.by.isEmpty { notes.append("by \(e(r.by))") }
            if let at = r.at { notes.append(e(time(at))) }
            if !r.reason.isEmpty { notes.append(e(r.reason)) }
            out +=
                "<tr><td>\(names[r.kind] ?? e(r.kind))</td><td>\(e(r.team))</td><td>\(e(r.from))</td><td>\(e(r.to))</td><td class=\"num\">\(money(r.amount))</td><td>\(notes.joined(separator: "; "))</td></tr>\n"
        }
        out += "</tbody>\n</table>\n</section>\n\n"
    }

    // MARK: Breaches and revocations

    mutating func breaches() {
        out += "<section aria-labelledby=\"breaches-h\">\n<h2 id=\"breaches-h\">Breaches and revocations</h2>\n"
        if report.breaches.isEmpty {
            out += "<p>No budget reached its limit in this period.</p>\n"
        } else {
            out +=
                "<table class=\"breaches\">\n<thead><tr><th scope=\"col\">Budget</th><th scope=\"col\">Period</th><th scope=\"col\">Reached</th><th scope=\"col\" class=\"num\">Spent</th><th scope=\"col\" class=\"num\">Limit</th><th scope=\"col\">Action</th></tr></thead>\n<tbody>\n"
            for b in report.breaches {
                var action = e(b.action.replacing("_", with: " "))
                if !b.revokedKeys.isEmpty { action += ": " + e(b.revokedKeys.joined(separator: ", ")) }
                if !b.overrideKeys.isEmpty { action += "; priority keys kept running: " + e(b.overrideKeys.joined(separator: ", ")) }
                out +=
                    "<tr><th scope=\"row\">\(e(b.scope)) \(e(b.id))</th><td>\(e(b.periodLabel))</td><td>\(e(time(b.crossedAt)))</td><td class=\"num\">\(money(b.spent))</td><td class=\"num\">\(money(b.limit))</td><td>\(action)</td></tr>\n"
            }
            out += "</tbody>\n</table>\n"
        }
        let now = report.revocations.filter { $0.action == "in_force" }
        let changes = report.revocations.filter { $0.action != "in_force" }
        if !now.isEmpty {
            out +=
                "<table class=\"revocations\">\n<caption>Keys revoked now</caption>\n<thead><tr><th scope=\"col\">Key</th><th scope=\"col\">Reason</th><th scope=\"col\">Until</th></tr></thead>\n<tbody>\n"
            for r in now {
                out +=
                    "<tr><th scope=\"row\">\(e(r.key))</th><td>\(e(r.reason))</td><td class=\"nowrap\">\(r.until.map { e(time($0)) } ?? "further notice")</td></tr>\n"
            }
            out += "</tbody>\n</table>\n"
        }
        if !changes.isEmpty {
            out +=
                "<table class=\"revocations\">\n<caption>Keys revoked and restored during the period</caption>\n<thead><tr><th scope=\"col\">When</th><th scope=\"col\">Key</th><th scope=\"col\">What</th><th scope=\"col\">Reason</th><th scope=\"col\">Until</th></tr></thead>\n<tbody>\n"
            for r in changes {
                out +=
                    "<tr><td class=\"nowrap\">\(e(time(r.at)))</td><td>\(e(r.key))</td><td>\(e(r.action))</td><td>\(e(r.reason))</td><td class=\"nowrap\">\(r.until.map { e(time($0)) } ?? (r.action == "restored" ? "" : "further notice"))</td></tr>\n"
            }
            out += "</tbody>\n</table>\n"
        }
        out += "</section>\n\n"
    }

    // MARK: Data quality

    mutating func dataQuality() {
        let q = report.dataQuality
        out += "<section aria-labelledby=\"quality-h\">\n<h2 id=\"quality-h\">Data quality</h2>\n<ul class=\"quality\">\n"
        out +=
            "<li>\(count(Int64(report.quarantine.count))) log lines quarantined (unreadable or invalid; listed in quarantine.csv, not in the figures).</li>\n"
        out += "<li>\(count(Int64(q.damagedSegments.count))) damaged log segments.</li>\n"
        out +=
            "<li>\(count(q.unknownKeyRequests)) calls with keys the config does not list (\(money(q.unknownKeyCost)) \(currency), shown as team “unknown”).</li>\n"
        out +=
            "<li>\(count(q.rejectedRequests)) calls refused by the collector; \(count(q.failedRequests)) failed upstream or were aborted.</li>\n"
        let unmeteredCalls = q.unmetered.reduce(Int64(0)) { $0 + $1.requests }
        if unmeteredCalls > 0 {
            out +=
                "<li>\(count(unmeteredCalls)) calls to endpoints Tally does not meter (files, batches, images, … as the config allows): the provider may bill them; they are not in the spend.</li>\n"
        }
        let unpricedCalls = report.unpriced.reduce(Int64(0)) { $0 + $1.requests }
        out += "<li>\(count(unpricedCalls)) calls to models without a price (not in the spend).</li>\n"
        for gap in PriceGapRow.Gap.allCases {
            let calls = report.priceGaps.filter { $0.gap == gap }.reduce(Int64(0)) { $0 + $1.requests }
            guard calls > 0 else { continue }
            let what =
                switch gap {
                case .serviceTier: "served on a tier their price does not list (priced at the standard rates)"
                case .cacheWrite1h: "with one-hour cache writes their price does not list (priced at the five-minute rate)"
                case .webSearch: "with web searches their price does not list (the searches are not in the spend)"
                }
            out += "<li>\(count(calls)) calls \(what); listed in price-gaps.csv.</li>\n"
        }
        if let late = report.late {
            out += "<li>\(count(late.requests)) late calls (\(money(late.cost)) \(currency)) arrived after the final report.</li>\n"
        }
        out += "</ul>\n"
        if !q.damagedSegments.isEmpty {
            out +=
                "<table>\n<caption>Damaged segments</caption>\n<thead><tr><th scope=\"col\">Segment</th><th scope=\"col\">Damage</th></tr></thead>\n<tbody>\n"
            for s in q.damagedSegments.prefix(50) { out += "<tr><td><code>\(e(s.path))</code></td><td>\(e(s.damage))</td></tr>\n" }
            out += "</tbody>\n</table>\n"
        }
        if !q.unmetered.isEmpty {
            out +=
                "<table>\n<caption>Unmetered calls (allowed endpoints)</caption>\n<thead><tr><th scope=\"col\">Team</th><th scope=\"col\">Key</th><th scope=\"col\">Provider</th><th scope=\"col\" class=\"num\">Calls</th><th scope=\"col\" class=\"num\">Of them failed</th></tr></thead>\n<tbody>\n"
            for u in q.unmetered.prefix(50) {
                out +=
                    "<tr><td>\(e(u.team))</td><td>\(e(u.key))</td><td>\(e(u.provider))</td><td class=\"num\">\(count(u.requests))</td><td class=\"num\">\(count(u.failed))</td></tr>\n"
            }
            out += "</tbody>\n</table>\n"
        }
        if !report.unpriced.isEmpty {
            out +=
                "<table>\n<caption>Models without a price</caption>\n<thead><tr><th scope=\"col\">Provider</th><th scope=\"col\">Model</th><th scope=\"col\" class=\"num\">Calls</th><th scope=\"col\" class=\"num\">Input tokens</th><th scope=\"col\" class=\"num\">Output tokens</th></tr></thead>\n<tbody>\n"
            for u in report.unpriced.prefix(50) {
                out +=
                    "<tr><td>\(e(u.provider))</td><td>\(e(u.model))</td><td class=\"num\">\(count(u.requests))</td><td class=\"num\">\(count(u.tokens.input))</td><td class=\"num\">\(count(u.tokens.output))</td></tr>\n"
            }
            out += "</tbody>\n</table>\n"
        }
        out += "</section>\n\n"
    }

    static let css = """

        :root{--ink:#1d2330;--muted:#5b6475;--line:#d9dde5;--bg:#f6f7f9;--ok:#2e7d32;--risk:#b26a00;--bad:#c62828;--accent:#0072B2}
        *{box-sizing:border-box}
        body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
        main{max-width:1040px;margin:0 auto;padding:24px}
        header h1{margin:0 0 4px;font-size:24px}
        .sub{margin:0 0 12px;color:var(--muted)}
        .badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
        .badge.final{background:var(--ok)}.badge.open{background:var(--accent)}
        .notice{background:#fff4e0;border:1px solid #f0c36d;padding:8px 12px;border-radius:6px}
        section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:0 0 16px}
        h2{font-size:18px;margin:0 0 12px}
        .kpis{display:grid;grid-template-columns:repeat(3,1fr);gap:12px}
        .kpi{border:1px solid var(--line);border-radius:8px;padding:10px 14px;border-top:4px solid var(--accent)}
        .kpi.alert{border-top-color:var(--bad)}.kpi.warn{border-top-color:var(--risk)}
        .kpi h3{margin:0;font-size:13px;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
        .kpi-value{margin:4px 0 2px;font-size:26px;font-weight:700;font-variant-numeric:tabular-nums}
        .kpi-value small{font-size:13px;font-weight:600;color:var(--muted)}
        .kpi-note{margin:2px 0;color:var(--muted);font-size:12.5px}
        .kpi-note.up{color:var(--bad)}.kpi-note.down{color:var(--ok)}
        .exact span{font-variant-numeric:tabular-nums}
        .chart{width:100%;height:auto;display:block}
        .chart .grid{stroke:#e6e8ee;stroke-width:1}.chart .baseline{stroke:#8a93a3;stroke-width:1}
        .chart .axis{font-size:11px;fill:var(--muted)}.chart .now{stroke:#8a93a3;stroke-dasharray:4 3}
        .legend{list-style:none;margin:8px 0;padding:0;display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12.5px}
        .swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
        details.chart-data summary{cursor:pointer;color:var(--muted);font-size:12.5px}
        table{border-collapse:collapse;width:100%;margin:8px 0 12px;font-variant-numeric:tabular-nums}
        caption{text-align:left;font-weight:600;padding:4px 0;color:var(--muted)}
        th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:anywhere}
        thead th{font-size:12px;color:var(--muted);font-weight:600;border-bottom:2px solid var(--line)}
        tbody th{font-weight:500}
        .num{text-align:right;white-space:nowrap}
        .grid2{display:grid;grid-template-columns:1fr 1fr;gap:0 24px;align-items:start}
        .nowrap{white-space:nowrap}
        tr.total th,tr.total td{font-weight:700;border-top:2px solid var(--line)}
        .share{display:inline-block;width:48px;height:8px;background:#e8ebf0;border-radius:4px;margin-right:6px;vertical-align:0}
        .share span{display:block;height:8px;background:var(--accent);border-radius:4px}
        .bar{display:inline-block;width:120px;height:10px;background:#e8ebf0;border-radius:5px;vertical-align:-1px}
        .bar .fill{display:block;height:10px;border-radius:5px;background:var(--ok)}
        .fill.at_risk{background:var(--risk)}.fill.breached,.fill.over{background:var(--bad)}.fill.covered_by_pool{background:#7b5ea7}
        .status{font-size:12px;font-weight:600;padding:1px 7px;border-radius:9px;background:#e8f5e9;color:var(--ok);white-space:nowrap}
        .status.at_risk{background:#fff4e0;color:var(--risk)}.status.breached,.status.over{background:#fdecea;color:var(--bad)}
        .status.covered_by_pool{background:#efe9f7;color:#5e4391}
        tr.rest th,tr.rest td{color:var(--muted)}
        code{white-space:nowrap;font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
        ul.quality{margin:0 0 8px;padding-left:20px}
        footer{color:var(--muted);font-size:12px;padding:4px 2px}
        @media (max-width:760px){.kpis{grid-template-columns:1fr 1fr}.grid2{grid-template-columns:1fr}}
        @page{margin:14mm 12mm}
        @media print{
        body{background:#fff;font-size:10.5pt;-webkit-print-color-adjust:exact;print-color-adjust:exact}
        main{max-width:none;padding:0}
        section{border:none;border-radius:0;padding:0;margin:0 0 8mm;break-before:page}
        section.summary{break-before:avoid}
        .kpis{grid-template-columns:repeat(3,1fr)}
        .grid2{grid-template-columns:1fr 1fr}
        details.chart-data{display:none}
        tr,.kpi{break-inside:avoid}
        thead{display:table-header-group}
        h2{break-after:avoid}
        }

        """
}

/// The daily chart's axis, as the tests see it.
enum ChartAxis {
    static func scale(_ value: Double) -> (top: Double, divisions: Int) { Page.axisScale(value) }
    static func label(_ value: Double) -> String { Page.axisLabel(value) }
}
