import Foundation
import TallyCore
import Yams

extension ConfigReader {
    static let topLevelKeys = [
        "currency", "file_mode", "default_provider", "providers", "orgs", "teams", "users", "projects", "keys", "pricing", "collector",
        "audit",
    ]

    /// Reads the whole file, then checks ids and references across sections.
    mutating func readConfig(_ root: Node) -> Config {
        var config = Config()
        guard let top = mapping(root, "", allowed: Self.topLevelKeys) else { return config }

        if let text = string(top, "file_mode", "") {
            if let mode = UInt32(text, radix: 8), mode <= 0o777, mode & 0o600 == 0o600 {
                config.fileMode = mode
            } else {
                report(
                    top["file_mode"], "file_mode", "must be an octal mode such as 0640 that lets the owner read and write; got '\(text)'")
            }
        }
        if let currency = string(top, "currency", "") {
            if currency.utf8.count == 3, currency.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) {
                config.currency = currency
            } else {
                report(top["currency"], "currency", "must be an ISO 4217 code in capitals, such as USD or EUR; got '\(currency)'")
            }
        }
        config.defaultProvider = string(top, "default_provider", "")
        config.providers = list(top["providers"], "providers", Self.readProvider)
        config.orgs = list(top["orgs"], "orgs", Self.readOrg)
        config.teams = list(top["teams"], "teams", Self.readTeam)
        config.users = list(top["users"], "users", Self.readUser)
        config.projects = list(top["projects"], "projects", Self.readProject)
        config.keys = list(top["keys"], "keys", Self.readKey)
        if let node = top["pricing"] { config.pricing = readPricing(node) }
        if let node = top["collector"] { config.collector = readCollector(node) }
        if let node = top["audit"] { config.audit = readAudit(node) }

        checkReferences(config, top)
        return config
    }

    /// Reads each element of an optional list; elements that fail are reported and left out.
    mutating func list<T>(_ node: Node?, _ field: String, _ read: (inout ConfigReader, Node, String) -> (T, Node)?) -> [(T)] {
        guard let node, let items = sequence(node, field) else { return [] }
        var result: [T] = []
        for (i, item) in items.enumerated() {
            if let (value, _) = read(&self, item, "\(field)[\(i)]") {
                result.append(value)
                marks["\(field)#\(result.count - 1)"] = item
            }
        }
        return result
    }

    // MARK: Sections

    static func readProvider(_ reader: inout ConfigReader, _ node: Node, _ path: String) -> (Provider, Node)? {
        guard let f = reader.mapping(node, path, allowed: ["name", "kind", "base_url", "api_key_env", "headers", "allow", "ca_file"]) else {
            return nil
        }
        let name = reader.string(f, "name", path, required: true, parentNode: node)
        let kind: ProviderKind? = reader.oneOf(f, "kind", path, required: true, parentNode: node)
        let baseURL = reader.string(f, "base_url", path, required: true, parentNode: node)
        let apiKeyEnv = reader.string(f, "api_key_env", path, required: true, parentNode: node)
        if let name {
            let reserved = ["v1", "healthz", "readyz", "metrics", "reports", "admin"]
            if reserved.contains(name) {
                reader.report(
                    f["name"], "\(path).name", "'\(name)' is reserved for the collector's own paths (\(reserved.joined(separator: ", ")))")
            } else if !name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F })
                || name.isEmpty
            {
                reader.report(
                    f["name"], "\(path).name",
                    "must be lowercase letters, digits, '-' or '_' (it becomes a URL path segment); got '\(name)'")
            }
        }
        if let baseURL {
            if let problem = ConfigReader.baseURLProblem(baseURL) { reader.report(f["base_url"], "\(path).base_url", problem) }
        }
        if let apiKeyEnv, !ConfigReader.isEnvName(apiKeyEnv) {
            reader.report(f["api_key_env"], "\(path).api_key_env", "'\(apiKeyEnv)' is not an environment variable name")
        }
        var headers: [String: String] = [:]
        if let node = f["headers"], case .mapping(let mapping) = node {
            for (keyNode, valueNode) in mapping {
                guard case .scalar(let key) = keyNode, let value = reader.scalar(valueNode, "\(path).headers.\(key.string)") else {
                    continue
                }
                let name = key.string
                let isToken =
                    !name.isEmpty
                    && name.utf8.allSatisfy {
                        ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D
                    }
                if !isToken {
                    reader.report(keyNode, "\(path).headers.\(name)", "is not a header name (letters, digits and '-')")
                } else if value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
                    reader.report(valueNode, "\(path).headers.\(name)", "a header value cannot hold control characters")
                } else if ["authorization", "x-api-key", "api-key", "x-goog-api-key", "host", "content-length"].contains(name.lowercased())
                {
                    reader.report(keyNode, "\(path).headers.\(name)", "is set by the collector itself")
                } else {
                    headers[name] = value
                }
            }
        } else if let node = f["headers"] {
            reader.report(node, "\(path).headers", "must be a mapping of header names to values")
        }
        let allow = reader.endpointGroups(f["allow"], "\(path).allow")
        let caFile = reader.string(f, "ca_file", path)
        if let caFile, caFile.isEmpty { reader.report(f["ca_file"], "\(path).ca_file", "must name a PEM file of certificate authorities") }
        if let caFile, let baseURL, !baseURL.lowercased().hasPrefix("https://") {
            reader.report(f["ca_file"], "\(path).ca_file", "only applies to an https:// base_url")
        }
        guard let name, let kind, let baseURL, let apiKeyEnv else { return nil }
        let trimmed = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        return (
            Provider(name: name, kind: kind, baseURL: trimmed, apiKeyEnv: apiKeyEnv, headers: headers, allow: allow, caFile: caFile), node
        )
    }

    /// An `allow:` list of endpoint groups: names as the collector derives them from paths (`files`, `fine_tuning`,
    /// `batchGenerateContent`, …) or `all`.
    mutating func endpointGroups(_ node: Node?, _ path: String) -> Set<String> {
        guard let node, let items = sequence(node, path) else { return [] }
        var groups: Set<String> = []
        for (i, item) in items.enumerated() {
            guard let name = scalar(item, "\(path)[\(i)]") else { continue }
            let usable =
                !name.isEmpty && name.utf8.count <= 64
                && name.utf8.allSatisfy {
                    ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F
                }
            if usable {
                groups.insert(name)
            } else {
                report(item, "\(path)[\(i)]", "'\(name)' is not an endpoint group (letters, digits, '_' or '-', e.g. files, batches, all)")
            }
        }
        return groups
    }

    static func baseURLProblem(_ text: String) -> String? {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty
        else {
            return "must be an http:// or https:// URL such as https://api.openai.com; got '\(text)'"
        }
        if url.query != nil || url.fragment != nil { return "must not carry a query or fragment; got '\(text)'" }
        if url.user != nil || url.password != nil {
            return "must not carry credentials; put the key in the environment variable api_key_env names"
        }
        return nil
    }

    static func isEnvName(_ text: String) -> Bool {
        guard let first = text.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return text.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }

    static func readOrg(_ reader: inout ConfigReader, _ node: Node, _ path: String) -> (Org, Node)? {
        guard let f = reader.mapping(node, path, allowed: ["id", "name", "budget"]) else { return nil }
        let id = reader.identifier(f, "id", path, parentNode: node)
        let name = reader.string(f, "name", path)
        let budget = reader.budget(f["budget"], "\(path).budget")
        guard let id else { return nil }
        return (Org(id: id, name: name, budget: budget), node)
    }

    static func readTeam(_ reader: inout ConfigReader, _ node: Node, _ path: String) -> (Team, Node)? {
        guard let f = reader.mapping(node, path, allowed: ["id", "name", "org", "pool", "budget"]) else { return nil }
        let id = reader.identifier(f, "id", path, parentNode: node)
        let name = reader.string(f, "name", path)
        let org = reader.string(f, "org", path, required: true, parentNode: node)
        let pool = reader.bool(f, "pool", path) ?? false
        let budget = reader.budget(f["budget"], "\(path).budget")
        guard let id, let org else { return nil }
        return (Team(id: id, name: name, org: org, pool: pool, budget: budget), node)
    }

    static func readUser(_ reader: inout ConfigReader, _ node: Node, _ path: String) -> (User, Node)? {
        guard let f = reader.mapping(node, path, allowed: ["id", "name", "team", "budget", "away"]) else { return nil }
        let id = reader.identifier(f, "id", path, parentNode: node)
        let name = reader.string(f, "name", path)
        let team = reader.string(f, "team", path, required: true, parentNode: node)
        let budget = reader.budget(f["budget"], "\(path).budget")
        var away: [AwayRange] = []
        if let awayNode = f["away"], let ranges = reader.sequence(awayNode, "\(path).away") {
            for (i, rangeNode) in ranges.enumerated() {
                let rangePath = "\(path).away[\(i)]"
                guard let rf = reader.mapping(rangeNode, rangePath, allowed: ["from", "to"]) else { continue }
                let from = reader.parsed(rf, "from", rangePath, ConfigReader.date)
                let to = reader.parsed(rf, "to", rangePath, ConfigReader.date)
                if rf["from"] == nil { reader.report(rangeNode, "\(rangePath).from", "is required") }
                if rf["to"] == nil { reader.report(rangeNode, "\(rangePath).to", "is required") }
                guard let from, let to else { continue }
                guard from <= to else {
                    reader.report(rf["to"], "\(rangePath).to", "must not be before from")
                    continue
                }
                away.append(AwayRange(fromDay: from, toDay: to))
            }
        }
        guard let id, let team else { return nil }
        return (User(id: id, name: name, team: team, budget: budget, away: away), node)
    }

    static func date(_ text: String) throws(ValueError) -> Int {
        guard let day = Timestamp.parseDate(text) else { throw ValueError("'\(text)' is not a date (write YYYY-MM-DD)") }
        return day
    }

    /// An RFC 3339 time, or a date meaning its midnight UTC.
    static func time(_ text: String) throws(ValueError) -> Int64 {
        if let millis = Timestamp.parse(text) { return millis }
        if let day = Timestamp.parseDate(text) { return Int64(day) * 86_400_000 }
        throw ValueError("'\(text)' is not an RFC 3339 time (write 2027-03-31T00:00:00Z) or a date (2027-03-31)")
    }

    static func readProject(_ reader: inout ConfigReader, _ node: Node, _ path: String) -> (Project, Node)? {
        guard let f = reader.mapping(node, path, allowed: ["id", "name", "team"]) else { return nil }
        let id = reader.identifier(f, "id", path, parentNode: node)
        let name = reader.string(f, "name", path)
        let team = reader.string(f, "team", path, required: true, parentNode: node)
        guard let id, let team else { return nil }
        return (Project(id: id, name: name, team: team), node)
    }

    static func readKey(_ reader: inout ConfigReader, _ node: Node, _ path: String) -> (Key, Node)? {
        guard
            let f = reader.mapping(
                node, path, allowed: ["id", "sha256", "user", "project", "budget", "privacy", "priority", "expires", "allow"])
        else { return nil }
        let id = reader.identifier(f, "id", path, parentNode: node)
        var sha = reader.string(f, "sha256", path, required: true, parentNode: node)
        if let text = sha {
            if text.hasPrefix("tk-") {
                reader.report(
                    f["sha256"], "\(path).sha256",
                    "holds a key secret; put only its SHA-256 here (tally keys new prints it) and rotate that secret")
                sha = nil
            } else if text.utf8.count != 64 || Hex.decode(text) == nil {
                reader.report(f["sha256"], "\(path).sha256", "must be 64 hex digits (the SHA-256 of the key secret)")
                sha = nil
            }
        }
        let user = reader.string(f, "user", path)
        let project = reader.string(f, "project", path)
        if user == nil, project == nil, f["user"] == nil, f["project"] == nil {
            reader.report(node, path, "a key needs a user or a project (or both), so that its spend can be attributed")
        }
        let budget = reader.budget(f["budget"], "\(path).budget")
        let privacy = reader.bool(f, "privacy", path) ?? false
        let priority = reader.bool(f, "priority", path) ?? false
        let expires = reader.parsed(f, "expires", path, ConfigReader.time)
        let allow = reader.endpointGroups(f["allow"], "\(path).allow")
        guard let id, let sha else { return nil }
        return (
            Key(
                id: id, sha256: sha.lowercased(), user: user, project: project, budget: budget, privacy: privacy,
                priority: priority, expires: expires, allow: allow), node
        )
    }

    mutating func readPricing(_ node: Node) -> Pricing {
        var pricing = Pricing()
        guard let f = mapping(node, "pricing", allowed: ["litellm_file", "models", "usd_rate", "unpriced_estimate"]) else { return pricing }
        pricing.litellmFile = string(f, "litellm_file", "pricing")
        if let rate = f["usd_rate"] { pricing.usdRates = readUsdRates(rate) }
        if let estimate = f["unpriced_estimate"],
            let fields = mapping(estimate, "pricing.unpriced_estimate", allowed: ["input", "output"])
        {
            if let rates = readRates(fields, "pricing.unpriced_estimate", node: estimate, inputRequired: true) {
                if rates.output == nil {
                    report(estimate, "pricing.unpriced_estimate.output", "is required (price per million tokens)")
                } else {
                    pricing.unpricedEstimate = rates
                }
            }
        }
        pricing.models = list(f["models"], "pricing.models") { reader, node, path in
            guard
                let m = reader.mapping(
                    node, path,
                    allowed: [
                        "model", "input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning", "web_search_request",
                        "tiers", "long_context", "from",
                    ])
            else { return nil }
            let model = reader.string(m, "model", path, required: true, parentNode: node)
            func price(_ key: String, required: Bool) -> TokenPrice? {
                if required, m[key] == nil { reader.report(node, "\(path).\(key)", "is required (price per million tokens)") }
                return reader.parsed(m, key, path) { (text: String) throws(ValueError) in try TokenPrice(perMillion: text) }
            }
            let input = price("input", required: true)
            let output = price("output", required: true)
            let cached = price("cached_input", required: false)
            let write = price("cache_write", required: false)
            let write1h = price("cache_write_1h", required: false)
            let reasoning = price("reasoning", required: false)
            let perSearch = reader.parsed(m, "web_search_request", path) { (text: String) throws(ValueError) -> Money in
                let amount = try Money(parsing: text)
                guard amount >= .zero else { throw ValueError("a price cannot be negative") }
                return amount
            }
            let tiers = m["tiers"].map { reader.readTiers($0, "\(path).tiers") } ?? [:]
            let longContext: [LongContextRates] = reader.list(m["long_context"], "\(path).long_context") {
                (reader: inout ConfigReader, node: Node, path: String) -> (LongContextRates, Node)? in
                guard
                    let band = reader.mapping(
                        node, path, allowed: ["above", "input", "output", "cached_input", "cache_write", "cache_write_1h", "tiers"])
                else { return nil }
                guard let above = reader.integer(band, "above", path, range: 1...1_000_000_000) else {
                    if band["above"] == nil { reader.report(node, "\(path).above", "is required (input tokens the call must exceed)") }
                    return nil
                }
                guard let rates = reader.readRates(band, path, node: node, inputRequired: true) else { return nil }
                let tiers = band["tiers"].map { reader.readTiers($0, "\(path).tiers") } ?? [:]
                return (LongContextRates(above: Int64(above), rates: rates, tiers: tiers), node)
            }
            var thresholds: Set<Int64> = []
            for band in longContext where !thresholds.insert(band.above).inserted {
                reader.report(m["long_context"], "\(path).long_context", "threshold \(band.above) is given twice")
            }
            let from = reader.parsed(m, "from", path, ConfigReader.time)
            guard let model, let input, let output else { return nil }
            return (
                ModelPrice(
                    model: model, input: input, output: output, cachedInput: cached, cacheWrite: write, reasoning: reasoning, from: from,
                    cacheWrite1h: write1h, webSearchRequest: perSearch, tiers: tiers, longContext: longContext),
                node
            )
        }
        var seen: Set<String> = []
        for (i, price) in pricing.models.enumerated() {
            let key = "\(price.model)@\(price.from.map(String.init) ?? "-")"
            if !seen.insert(key).inserted {
                report(
                    marks["pricing.models#\(i)"], "pricing.models[\(i)]", "model '\(price.model)' already has a price from the same date")
            }
        }
        return pricing
    }

    /// `usd_rate: 0.92`, or a history: `usd_rate: [{rate: 0.92, from: 2026-01-01}, {rate: 0.95, from: 2026-07-01}]`.
    mutating func readUsdRates(_ node: Node) -> [UsdRate] {
        func parseRate(_ text: String) throws(ValueError) -> Int64 {
            let amount = try Money(parsing: text)
            guard amount > .zero else { throw ValueError("a rate must be more than 0") }
            guard amount.picos % 1_000_000 == 0, let micros = Int64(exactly: amount.picos / 1_000_000) else {
                throw ValueError("a rate has at most six decimal places")
            }
            return micros
        }
        if case .scalar = node {
            return parsed(["usd_rate": node], "usd_rate", "pricing", parseRate).map { [UsdRate(micros: $0)] } ?? []
        }
        let rates: [UsdRate] = list(node, "pricing.usd_rate") {
            (reader: inout ConfigReader, node: Node, path: String) -> (UsdRate, Node)? in
            guard let f = reader.mapping(node, path, allowed: ["rate", "from"]) else { return nil }
            if f["rate"] == nil { reader.report(node, "\(path).rate", "is required (one US dollar in the config's currency)") }
            guard let micros = reader.parsed(f, "rate", path, parseRate) else { return nil }
            return (UsdRate(micros: micros, from: reader.parsed(f, "from", path, ConfigReader.time)), node)
        }
        var seen: Set<Int64?> = []
        for rate in rates where !seen.insert(rate.from).inserted {
            report(node, "pricing.usd_rate", "two rates take effect at the same time")
        }
        return rates.sorted { ($0.from ?? .min) < ($1.from ?? .min) }
    }

    /// `tiers: {priority: {input: …, output: …}, batch: {…}}`: rates per served tier, by the names providers report
    /// (`ServiceTier.priceKey`: `batches` is `batch`; the standard tier's names are refused, its rates are the plain ones).
    mutating func readTiers(_ node: Node, _ path: String) -> [String: TokenRates] {
        guard case .mapping(let mapping) = node else {
            report(node, path, "must be a mapping of tier names to rates, got \(describe(node))")
            return [:]
        }
        var tiers: [String: TokenRates] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                report(keyNode, path, "keys must be tier names")
                continue
            }
            let name = scalar.string
            guard let key = ServiceTier.priceKey(name) else {
                report(keyNode, "\(path).\(name)", "is the standard tier: its rates are the model's own input and output")
                continue
            }
            guard tiers[key] == nil else {
                report(keyNode, "\(path).\(name)", "is given twice")
                continue
            }
            guard
                let fields = self.mapping(
                    value, "\(path).\(name)", allowed: ["input", "output", "cached_input", "cache_write", "cache_write_1h"]),
                let rates = readRates(fields, "\(path).\(name)", node: value, inputRequired: true)
            else { continue }
            tiers[key] = rates
        }
        return tiers
    }

    /// The per-million rates of a tier or a long-context band; `input` is required where the rates stand for a price.
    mutating func readRates(_ fields: [String: Node], _ path: String, node: Node, inputRequired: Bool) -> TokenRates? {
        func price(_ key: String) -> TokenPrice? {
            parsed(fields, key, path) { (text: String) throws(ValueError) in try TokenPrice(perMillion: text) }
        }
        let rates = TokenRates(
            input: price("input"), output: price("output"), cachedInput: price("cached_input"), cacheWrite: price("cache_write"),
            cacheWrite1h: price("cache_write_1h"))
        if inputRequired, rates.input == nil {
            if fields["input"] == nil { report(node, "\(path).input", "is required (price per million tokens)") }
            return nil
        }
        return rates
    }

    mutating func readCollector(_ node: Node) -> CollectorSettings {
        var c = CollectorSettings()
        let p = "collector"
        let allowed = [
            "id", "listen", "log_dir", "segment_max_bytes", "segment_max_age", "fsync", "fsync_interval", "revocations",
            "reload_interval", "hash_secret_env", "admin_token_env", "preview_chars", "redact", "drain_timeout", "on_client_abort",
            "shutdown_grace", "upstream_connect_timeout", "upstream_read_timeout", "upstream_call_timeout", "log_queue_wait",
            "log_queue_size",
            "client_idle_timeout", "request_read_timeout", "upstream_max_connections", "upstream_idle_timeout",
        ]
        guard let f = mapping(node, p, allowed: allowed) else { return c }
        if f["id"] != nil, let id = identifier(f, "id", p, parentNode: node) { c.id = id }
        if let listen = string(f, "listen", p) {
            if let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port),
                colon != listen.startIndex
            {
                c.listen = listen
            } else {
                report(f["listen"], "\(p).listen", "must be host:port, such as 127.0.0.1:4000 or 0.0.0.0:8080; got '\(listen)'")
            }
        }
        if let dir = string(f, "log_dir", p) { c.logDir = dir }
        if let size = parsed(f, "segment_max_bytes", p, ByteSizeText.bytes) {
            if size >= 4096 {
                c.segmentMaxBytes = size
            } else {
                report(f["segment_max_bytes"], "\(p).segment_max_bytes", "must be at least 4KiB")
            }
        }
        if let age = duration(f, "segment_max_age", p, minimum: 1000) { c.segmentMaxAgeMs = age }
        if let mode: FsyncMode = oneOf(f, "fsync", p) { c.fsync = mode }
        if let interval = duration(f, "fsync_interval", p, minimum: 10) { c.fsyncIntervalMs = interval }
        if let path = string(f, "revocations", p) { c.revocations = path }
        if let interval = duration(f, "reload_interval", p, minimum: 100) { c.reloadIntervalMs = interval }
        if let timeout = duration(f, "drain_timeout", p, minimum: 1000) { c.drainTimeoutMs = timeout }
        if let mode: ClientAbortMode = oneOf(f, "on_client_abort", p) { c.onClientAbort = mode }
        if let grace = duration(f, "shutdown_grace", p, minimum: 1000) { c.shutdownGraceMs = grace }
        if let timeout = duration(f, "upstream_connect_timeout", p, minimum: 100) { c.upstreamConnectTimeoutMs = timeout }
        if let timeout = duration(f, "upstream_read_timeout", p, minimum: 100) { c.upstreamReadTimeoutMs = timeout }
        if let timeout = duration(f, "upstream_call_timeout", p, minimum: 1000) { c.upstreamCallTimeoutMs = timeout }
        if let wait = duration(f, "log_queue_wait", p, minimum: 0) { c.logQueueWaitMs = wait }
        if let size: Int = parsed(
            f, "log_queue_size", p,
            { (text: String) throws(ValueError) in
                guard let n = Int(text), (16...1_000_000).contains(n) else { throw ValueError("must be a whole number from 16 to 1000000") }
                return n
            })
        {
            c.logQueueSize = size
        }
        if let timeout = duration(f, "client_idle_timeout", p, minimum: 1000) { c.clientIdleTimeoutMs = timeout }
        if let timeout = duration(f, "request_read_timeout", p, minimum: 1000) { c.requestReadTimeoutMs = timeout }
        if let most = integer(f, "upstream_max_connections", p, range: 1...65_536) { c.upstreamMaxConnections = most }
        if let timeout = duration(f, "upstream_idle_timeout", p, minimum: 1000) { c.upstreamIdleTimeoutMs = timeout }
        for (key, keyPath) in [
            ("hash_secret_env", \CollectorSettings.hashSecretEnv), ("admin_token_env", \CollectorSettings.adminTokenEnv),
        ] {
            if let name = string(f, key, p) {
                if ConfigReader.isEnvName(name) {
                    c[keyPath: keyPath] = name
                } else {
                    report(f[key], "\(p).\(key)", "'\(name)' is not an environment variable name")
                }
            }
        }
        if let chars = integer(f, "preview_chars", p, range: 0...4096) { c.previewChars = chars }
        if let node = f["redact"], let patterns = sequence(node, "\(p).redact") {
            for (i, patternNode) in patterns.enumerated() {
                guard let pattern = scalar(patternNode, "\(p).redact[\(i)]") else { continue }
                if let problem = validatePattern?(pattern) {
                    report(patternNode, "\(p).redact[\(i)]", "is not a usable PCRE2 pattern: \(problem)")
                } else {
                    c.redact.append(pattern)
                }
            }
        }
        return c
    }

    mutating func readAudit(_ node: Node) -> AuditSettings {
        var a = AuditSettings()
        let p = "audit"
        let allowed = [
            "db", "reports_dir", "timezone", "alert_thresholds", "duplicate_window", "retry_loop", "runaway", "webhook_url_env",
            "near_duplicates", "auto_approve",
        ]
        guard let f = mapping(node, p, allowed: allowed) else { return a }
        if let db = string(f, "db", p) { a.db = db }
        if let dir = string(f, "reports_dir", p) { a.reportsDir = dir }
        if let zone = string(f, "timezone", p) {
            if TimeZone(identifier: zone) != nil {
                a.timezone = zone
            } else {
                report(f["timezone"], "\(p).timezone", "'\(zone)' is not an IANA timezone (such as UTC, Europe/Berlin, America/New_York)")
            }
        }
        if let node = f["alert_thresholds"], let items = sequence(node, "\(p).alert_thresholds") {
            var thresholds: [Ratio] = []
            for (i, item) in items.enumerated() {
                let path = "\(p).alert_thresholds[\(i)]"
                guard let text = scalar(item, path) else { continue }
                do {
                    let ratio = try Ratio(parsing: text)
                    guard ratio.units > 0, ratio <= Ratio(units: 10 * Ratio.one.units) else {
                        report(item, path, "must be more than 0 and at most 10 (a share of the budget: 0.8 is 80%)")
                        continue
                    }
                    thresholds.append(ratio)
                } catch {
                    report(item, path, error.message)
                }
            }
            if thresholds != thresholds.sorted() || Set(thresholds).count != thresholds.count {
                report(node, "\(p).alert_thresholds", "must rise strictly, such as [0.5, 0.8, 0.9, 1.0]")
            }
            a.alertThresholds = thresholds
        }
        if let window = duration(f, "duplicate_window", p, minimum: 1000) { a.duplicateWindowMs = window }
        if let node = f["retry_loop"], let r = mapping(node, "\(p).retry_loop", allowed: ["min_repeats", "within"]) {
            if let n = integer(r, "min_repeats", "\(p).retry_loop", range: 2...1_000_000) { a.retryLoop.minRepeats = n }
            if let within = duration(r, "within", "\(p).retry_loop", minimum: 1000) { a.retryLoop.withinMs = within }
        }
        if let node = f["runaway"],
            let r = mapping(node, "\(p).runaway", allowed: ["max_requests_per_minute", "max_spend_per_hour", "action", "cooldown"])
        {
            let path = "\(p).runaway"
            if let n = integer(r, "max_requests_per_minute", path, range: 1...100_000_000) { a.runaway.maxRequestsPerMinute = n }
            if let spend = parsed(r, "max_spend_per_hour", path, { (text: String) throws(ValueError) in try Money(parsing: text) }) {
                if spend > .zero {
                    a.runaway.maxSpendPerHour = spend
                } else {
                    report(r["max_spend_per_hour"], "\(path).max_spend_per_hour", "must be more than 0")
                }
            }
            if let action: RunawayAction = oneOf(r, "action", path) { a.runaway.action = action }
            if let cooldown = duration(r, "cooldown", path, minimum: 1000) { a.runaway.cooldownMs = cooldown }
        }
        if let node = f["near_duplicates"], let r = mapping(node, "\(p).near_duplicates", allowed: ["max_distance", "count_as_waste"]) {
            let path = "\(p).near_duplicates"
            if let n = integer(r, "max_distance", path, range: 0...8) { a.nearDuplicates.maxDistance = n }
            if let waste = bool(r, "count_as_waste", path) { a.nearDuplicates.countAsWaste = waste }
        }
        if let auto = bool(f, "auto_approve", p) { a.autoApprove = auto }
        if let name = string(f, "webhook_url_env", p) {
            if ConfigReader.isEnvName(name) {
                a.webhookURLEnv = name
            } else {
                report(f["webhook_url_env"], "\(p).webhook_url_env", "'\(name)' is not an environment variable name")
            }
        }
        return a
    }

    // MARK: Cross-references

    mutating func checkReferences(_ config: Config, _ top: [String: Node]) {
        func unique<T>(_ items: [T], _ section: String, _ key: (T) -> String, what: String = "id") {
            var seen: [String: Int] = [:]
            for (i, item) in items.enumerated() {
                let value = key(item)
                if let first = seen[value] {
                    report(marks["\(section)#\(i)"], "\(section)[\(i)].\(what)", "'\(value)' is already used by \(section)[\(first)]")
                } else {
                    seen[value] = i
                }
            }
        }
        unique(config.providers, "providers", \.name, what: "name")
        unique(config.orgs, "orgs", \.id)
        unique(config.teams, "teams", \.id)
        unique(config.users, "users", \.id)
        unique(config.projects, "projects", \.id)
        unique(config.keys, "keys", \.id)
        unique(config.keys, "keys", \.sha256, what: "sha256")

        let orgs = Set(config.orgs.map(\.id))
        let teams = Set(config.teams.map(\.id))
        let users = Set(config.users.map(\.id))
        let projects = Set(config.projects.map(\.id))
        func exists(_ value: String?, in set: Set<String>, _ section: String, _ index: Int, _ field: String, _ kind: String) {
            guard let value, !set.contains(value) else { return }
            let known = set.isEmpty ? "none are configured" : "known: \(set.sorted().prefix(8).joined(separator: ", "))"
            report(marks["\(section)#\(index)"], "\(section)[\(index)].\(field)", "\(kind) '\(value)' does not exist (\(known))")
        }
        for (i, team) in config.teams.enumerated() { exists(team.org, in: orgs, "teams", i, "org", "org") }
        for (i, user) in config.users.enumerated() { exists(user.team, in: teams, "users", i, "team", "team") }
        for (i, project) in config.projects.enumerated() { exists(project.team, in: teams, "projects", i, "team", "team") }
        for (i, key) in config.keys.enumerated() {
            exists(key.user, in: users, "keys", i, "user", "user")
            exists(key.project, in: projects, "keys", i, "project", "project")
        }
        if let name = config.defaultProvider, config.provider(named: name) == nil {
            report(
                top["default_provider"], "default_provider",
                "provider '\(name)' is not among providers (\(config.providers.map(\.name).joined(separator: ", ")))")
        }
    }
}
