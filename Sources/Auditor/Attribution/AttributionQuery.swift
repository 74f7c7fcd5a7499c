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

    static func label(_ attribution: Attribution?, _ field: KeyPath<Attribution, String>) -> String {
        guard let attribution else { return unknown }
        if !attribution.known && field != \Attribution.key { return unknown }
        let value = attribution[keyPath: field]
        return value.isEmpty ? none : value
    }

    public static func breakdown(
        ledger: Ledger, period: Period, by dimensions: [SpendDimension], timezone: String,
        currency: String
    ) throws(AuditError) -> SpendBreakdown {
        // Group the rollups by the ids the dimensions need, then by their values here, summing cost in Int128.
        var grouping: RollupGrouping = []
        if dimensions.contains(where: { [.day, .week, .month].contains($0) }) { grouping.insert(.day) }
        if dimensions.contains(where: \.needsAttribution) { grouping.insert(.attribution) }
        if dimensions.contains(.provider) { grouping.insert(.provider) }
        if dimensions.contains(.model) { grouping.insert(.model) }
        if dimensions.contains(.endUser) { grouping.insert(.endUser) }
        if dimensions.contains(where: { if case .tag = $0 { true } else { $0 == .tags } }) { grouping.insert(.tags) }
        let names = try ledger.names()
        let (attributions, dims) = (names.attributions, names.dims)
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
        try ledger.rollups(grouping: grouping, fromDay: period.firstDay, toDay: period.lastDay) { row in
            let day = row.day
            let attr = grouping.contains(.attribution) ? attributions[row.attribution] : nil
            let provider = grouping.contains(.provider) ? dims[row.provider] ?? AttributionQuery.unknown : ""
            let model = grouping.contains(.model) ? dims[row.model] ?? AttributionQuery.unknown : ""
            let endUserID = row.endUser
            let tagsID = row.tags
            var t = SpendTotals()
            t.requests = row.requests
            t.failed = row.failed
            t.rejected = row.rejected
            t.tokens = row.tokens
            t.cost = row.cost
            if !row.priced { t.unpriced = t.requests }

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
                    tagsID == 0
                        ? AttributionQuery.none
                        : tagSet(tagsID).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                }
            }
            lines[values, default: SpendTotals()].add(t)
            total.add(t)
        }
        for row in try ledger.unpricedRollups(fromDay: period.firstDay, toDay: period.lastDay) {
            var t = SpendTotals()
            t.unpriced = row.requests
            t.requests = row.requests
            t.tokens = row.tokens
            guard t.unpriced > 0 else { continue }
            unpriced[[dims[row.provider] ?? AttributionQuery.unknown, dims[row.model] ?? AttributionQuery.unknown], default: SpendTotals()]
                .add(t)
        }
        let chronological = dimensions.contains { [.day, .week, .month].contains($0) }
        let sorted = lines.map { SpendLine(values: $0.key, totals: $0.value) }.sorted { a, b in
            if !chronological, a.totals.cost != b.totals.cost { return a.totals.cost > b.totals.cost }
            return a.values.lexicographicallyPrecedes(b.values)
        }
        return SpendBreakdown(
            period: period.label, firstDay: Timestamp.formatDate(days: period.firstDay),
            lastDay: Timestamp.formatDate(days: period.lastDay),
            timezone: timezone, currency: currency, dimensions: dimensions.map(\.description), lines: sorted, total: total,
            unpriced: unpriced.map { UnpricedModel(provider: $0.key[0], model: $0.key[1], totals: $0.value) }
                .sorted { ($0.totals.unpriced, $1.model) > ($1.totals.unpriced, $0.model) })
    }
}
