import GRDB
import Report
import TallyConfig
import TallyCore
import TallyLedger
import UsageLog

/// A dimension spend can be broken down by (`--by`).
public enum SpendDimension: Sendable, Hashable, CustomStringConvertible {
    case org, team, project, user, key, provider, model, day, week, month
    /// The end user the call named (`user` in the log).
    case endUser
    /// The value of one tag (`tag:env`).
    case tag(String)
    /// The whole tag set, as `k=v,k2=v2`.
    case tags

    public static let names = "org, team, project, user, key, provider, model, day, week, month, end_user, tags, tag:NAME"

    public init(parsing text: String) throws(AuditError) {
        switch text {
        case "org": self = .org
        case "team": self = .team
        case "project": self = .project
        case "user": self = .user
        case "key": self = .key
        case "provider": self = .provider
        case "model": self = .model
        case "day": self = .day
        case "week": self = .week
        case "month": self = .month
        case "end_user", "end-user", "enduser": self = .endUser
        case "tags": self = .tags
        default:
            if text.hasPrefix("tag:"), text.count > 4 {
                self = .tag(String(text.dropFirst(4)))
            } else {
                throw AuditError(.usage, "'\(text)' is not a dimension; use a comma-separated list of: \(Self.names)")
            }
        }
    }

    /// Parses `team,model`.
    public static func list(_ text: String) throws(AuditError) -> [SpendDimension] {
        var result: [SpendDimension] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = part.trimmingSpaces
            guard !name.isEmpty else { throw AuditError(.usage, "--by has an empty name in '\(text)'") }
            let dimension = try SpendDimension(parsing: name)
            guard !result.contains(dimension) else { throw AuditError(.usage, "--by names '\(name)' twice") }
            result.append(dimension)
        }
        return result
    }

    public var description: String {
        switch self {
        case .org: "org"
        case .team: "team"
        case .project: "project"
        case .user: "user"
        case .key: "key"
        case .provider: "provider"
        case .model: "model"
        case .day: "day"
        case .week: "week"
        case .month: "month"
        case .endUser: "end_user"
        case .tag(let name): "tag:\(name)"
        case .tags: "tags"
        }
    }

    var needsAttribution: Bool {
        switch self {
        case .org, .team, .project, .user, .key: true
        default: false
        }
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

/// Reads spend back out of the ledger's daily rollups, grouped by any dimensions, without touching the logs.
public enum AttributionQuery {
    /// The label a missing value gets: a key the config does not list is `unknown`; a key without a user, a call
    /// without an end user or tag, `(none)`.
    public static let unknown = "unknown"
    public static let none = "(none)"

    /// The attributions and the dimension values (providers, models, end users, tag sets) by their ids.
    static func names(_ db: Database) throws -> (attributions: [Int64: Attribution], dims: [Int64: String]) {
        let attributions = try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT id, key, known, user, project, team, org FROM attributions").map {
            ($0[0] as Int64, Attribution(key: $0[1], known: $0[2], user: $0[3], project: $0[4], team: $0[5], org: $0[6]))
        })
        let dims = try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT id, value FROM dims").map { ($0[0] as Int64, $0[1] as String) })
        return (attributions, dims)
    }

    /// How an owner field of a call's attribution is shown: `unknown` for a key the config does not list (its key
    /// excepted), `(none)` for an empty field.
    static func label(_ attribution: Attribution?, _ field: KeyPath<Attribution, String>) -> String {
        guard let attribution else { return unknown }
        if !attribution.known && field != \Attribution.key { return unknown }
        let value = attribution[keyPath: field]
        return value.isEmpty ? none : value
    }

    public static func breakdown(ledger: Ledger, period: Period, by dimensions: [SpendDimension], timezone: String,
                                 currency: String) throws(AuditError) -> SpendBreakdown {
        // Group in SQL by the ids the dimensions need, then by their values in Swift, summing cost in Int128.
        var columns: [String] = []
        if dimensions.contains(where: { [.day, .week, .month].contains($0) }) { columns.append("r.day") }
        if dimensions.contains(where: \.needsAttribution) { columns.append("r.attr") }
        if dimensions.contains(.provider) { columns.append("r.provider") }
        if dimensions.contains(.model) { columns.append("r.model") }
        if dimensions.contains(.endUser) { columns.append("r.end_user") }
        if dimensions.contains(where: { if case .tag = $0 { true } else { $0 == .tags } }) { columns.append("r.tags") }
        let groupColumns = columns + ["r.priced"]
        // Only end users and tags need the detailed rollup; everything else reads the far smaller one.
        let table = columns.contains("r.end_user") || columns.contains("r.tags") ? "rollup_daily_detail" : "rollup_daily"
        let sql = """
            SELECT \(groupColumns.joined(separator: ", ")),
                SUM(r.requests), SUM(r.failed), SUM(r.rejected), SUM(r.input), SUM(r.output), SUM(r.cached_input),
                SUM(r.cache_write), SUM(r.reasoning), SUM(r.cost_hi), SUM(r.cost_lo / 1000000), SUM(r.cost_lo % 1000000)
            FROM \(table) r
            WHERE r.day BETWEEN ? AND ?
            GROUP BY \(groupColumns.joined(separator: ", "))
            """
        return try ledger.access { db in
            let (attributions, dims) = try names(db)
            var tagSets: [Int64: [String: String]] = [:]
            func tagSet(_ id: Int64) -> [String: String] {
                if let cached = tagSets[id] { return cached }
                var parsed: [String: String] = [:]
                if let text = dims[id], case .object(let members)? = try? JSONValue.parse(Array(text.utf8)) {
                    for member in members { parsed[member.key] = member.value.stringValue ?? "" }
                }
                tagSets[id] = parsed
                return parsed
            }

            var lines: [[String]: SpendTotals] = [:]
            var unpriced: [[String]: SpendTotals] = [:]
            var total = SpendTotals()
            let rows = try Row.fetchCursor(db, sql: sql, arguments: [period.firstDay, period.lastDay])
            while let row = try rows.next() {
                var i = 0
                func next() -> Int64 { defer { i += 1 }; return row[i] }
                let day = columns.contains("r.day") ? Int(next()) : 0
                let attr = columns.contains("r.attr") ? attributions[next()] : nil
                let provider = columns.contains("r.provider") ? dims[next()] ?? AttributionQuery.unknown : ""
                let model = columns.contains("r.model") ? dims[next()] ?? AttributionQuery.unknown : ""
                let endUserID = columns.contains("r.end_user") ? next() : 0
                let tagsID = columns.contains("r.tags") ? next() : 0
                let priced = next() != 0
                var t = SpendTotals()
                t.requests = next()
                t.failed = next()
                t.rejected = next()
                t.input = next()
                t.output = next()
                t.cachedInput = next()
                t.cacheWrite = next()
                t.reasoning = next()
                t.cost = Ledger.summedCost(row, at: i)
                if !priced { t.unpriced = t.requests }

                func owner(_ field: KeyPath<Attribution, String>) -> String { label(attr, field) }
                let values: [String] = dimensions.map { dimension in
                    switch dimension {
                    case .org: owner(\.org)
                    case .team: owner(\.team)
                    case .project: owner(\.project)
                    case .user: owner(\.user)
                    case .key: owner(\.key)
                    case .provider: provider
                    case .model: model
                    case .day: Timestamp.formatDate(days: day)
                    case .week: Period.isoWeekLabel(day)
                    case .month: Period.month(containing: day).label
                    case .endUser: endUserID == 0 ? AttributionQuery.none : dims[endUserID] ?? AttributionQuery.unknown
                    case .tag(let name): tagsID == 0 ? AttributionQuery.none : tagSet(tagsID)[name] ?? AttributionQuery.none
                    case .tags:
                        tagsID == 0 ? AttributionQuery.none
                            : tagSet(tagsID).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                    }
                }
                lines[values, default: SpendTotals()].add(t)
                total.add(t)
            }
            let unpricedRows = try Row.fetchCursor(db, sql: """
                SELECT provider, model, SUM(requests), SUM(input), SUM(output), SUM(cached_input),
                    SUM(cache_write), SUM(reasoning)
                FROM rollup_daily WHERE priced = 0 AND day BETWEEN ? AND ? GROUP BY provider, model
                """, arguments: [period.firstDay, period.lastDay])
            while let row = try unpricedRows.next() {
                var t = SpendTotals()
                t.unpriced = row[2]
                t.requests = row[2]
                t.input = row[3]
                t.output = row[4]
                t.cachedInput = row[5]
                t.cacheWrite = row[6]
                t.reasoning = row[7]
                guard t.unpriced > 0 else { continue }
                unpriced[[dims[row[0]] ?? AttributionQuery.unknown, dims[row[1]] ?? AttributionQuery.unknown], default: SpendTotals()].add(t)
            }
            let chronological = dimensions.contains { [.day, .week, .month].contains($0) }
            let sorted = lines.map { SpendLine(values: $0.key, totals: $0.value) }.sorted { a, b in
                if !chronological, a.totals.cost != b.totals.cost { return a.totals.cost > b.totals.cost }
                return a.values.lexicographicallyPrecedes(b.values)
            }
            return SpendBreakdown(
                period: period.label, firstDay: Timestamp.formatDate(days: period.firstDay), lastDay: Timestamp.formatDate(days: period.lastDay),
                timezone: timezone, currency: currency, dimensions: dimensions.map(\.description), lines: sorted, total: total,
                unpriced: unpriced.map { UnpricedModel(provider: $0.key[0], model: $0.key[1], totals: $0.value) }
                    .sorted { ($0.totals.unpriced, $1.model) > ($1.totals.unpriced, $0.model) })
        }
    }
}
