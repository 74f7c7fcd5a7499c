import TallyCore

/// A parsed and checked Tally config file (`docs/config.md`).
///
/// Load it with `Config.load(path:)`; every problem in the file is reported with its line and field.
public struct Config: Sendable {
    /// ISO 4217 code of the currency every amount and price is in.
    public var currency: String = "USD"
    /// The mode of the files Tally creates (log segments, the ledger, the revocation list, reports), less the umask.
    public var fileMode: UInt32 = 0o640
    /// The provider that paths starting `/v1/` go to; nil when none is named (then only `/<provider>/…` routes).
    public var defaultProvider: String?
    public var providers: [Provider] = []
    public var orgs: [Org] = []
    public var teams: [Team] = []
    public var users: [User] = []
    public var projects: [Project] = []
    public var keys: [Key] = []
    public var pricing = Pricing()
    public var collector = CollectorSettings()
    public var audit = AuditSettings()
    /// The folder of the config file; relative paths in the config are resolved against it.
    public var baseDirectory: String = "."

    public init() {}

    /// `path` made absolute against the config file's folder (absolute paths are returned unchanged).
    public func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return baseDirectory == "." ? path : baseDirectory + "/" + path
    }

    public func provider(named name: String) -> Provider? { providers.first { $0.name == name } }
}

/// An upstream API the collector forwards to.
public struct Provider: Sendable, Equatable {
    /// The first path segment clients use: `/<name>/v1/...`.
    public var name: String
    public var kind: ProviderKind
    /// Origin (and optional path prefix) the client's path after `/<name>` is appended to.
    public var baseURL: String
    /// Environment variable holding the real API key.
    public var apiKeyEnv: String
    /// Headers the collector sends this provider on every call (`OpenAI-Organization`, `OpenAI-Project`, …): the
    /// organisation's choice of who pays, never the client's (clients' own such headers are removed).
    public var headers: [String: String]
    /// Endpoint groups the collector forwards for every key besides the metered endpoints and harmless reads
    /// (`files`, `batches`, `images`, …, or `all`); such calls are logged with outcome `unmetered`.
    public var allow: Set<String>
    /// A PEM file of certificate authorities the collector trusts for this provider besides the system's (a private
    /// gateway's own CA); nil for the system trust store alone. Relative paths are resolved against the config's folder.
    public var caFile: String?

    public init(
        name: String, kind: ProviderKind, baseURL: String, apiKeyEnv: String, headers: [String: String] = [:], allow: Set<String> = [],
        caFile: String? = nil
    ) {
        self.name = name
        self.kind = kind
        self.baseURL = baseURL
        self.apiKeyEnv = apiKeyEnv
        self.headers = headers
        self.allow = allow
        self.caFile = caFile
    }
}

public struct Org: Sendable, Equatable {
    public var id: String
    public var name: String?
    public var budget: Budget?

    public init(id: String, name: String? = nil, budget: Budget? = nil) {
        self.id = id
        self.name = name
        self.budget = budget
    }
}

public struct Team: Sendable, Equatable {
    public var id: String
    public var name: String?
    public var org: String
    /// Whether away members' unused budget flows into a team pool that covers members who overspend.
    public var pool: Bool
    public var budget: Budget?

    public init(id: String, name: String? = nil, org: String, pool: Bool = false, budget: Budget? = nil) {
        self.id = id
        self.name = name
        self.org = org
        self.pool = pool
        self.budget = budget
    }
}

/// Days a user is away, both ends included, as day numbers since 1970-01-01.
public struct AwayRange: Sendable, Equatable {
    public var fromDay: Int
    public var toDay: Int

    public init(fromDay: Int, toDay: Int) {
        self.fromDay = fromDay
        self.toDay = toDay
    }
}

public struct User: Sendable, Equatable {
    public var id: String
    public var name: String?
    public var team: String
    public var budget: Budget?
    public var away: [AwayRange]

    public init(id: String, name: String? = nil, team: String, budget: Budget? = nil, away: [AwayRange] = []) {
        self.id = id
        self.name = name
        self.team = team
        self.budget = budget
        self.away = away
    }
}

public struct Project: Sendable, Equatable {
    public var id: String
    public var name: String?
    public var team: String

    public init(id: String, name: String? = nil, team: String) {
        self.id = id
        self.name = name
        self.team = team
    }
}

/// A virtual key: clients present its secret, the config holds only the secret's SHA-256.
public struct Key: Sendable, Equatable {
    public var id: String
    /// Lowercase hex SHA-256 of the secret (`tk-…`).
    public var sha256: String
    public var user: String?
    public var project: String?
    public var budget: Budget?
    /// Never keep a prompt preview for this key's calls.
    public var privacy: Bool
    /// Never revoke automatically (the emergency bypass); breaches are still reported.
    public var priority: Bool
    /// When the key stops working, milliseconds since the epoch.
    public var expires: Int64?
    /// Endpoint groups this key may call beyond what its provider allows (see `Provider.allow`).
    public var allow: Set<String>

    public init(
        id: String, sha256: String, user: String? = nil, project: String? = nil, budget: Budget? = nil,
        privacy: Bool = false, priority: Bool = false, expires: Int64? = nil, allow: Set<String> = []
    ) {
        self.allow = allow
        self.id = id
        self.sha256 = sha256
        self.user = user
        self.project = project
        self.budget = budget
        self.privacy = privacy
        self.priority = priority
        self.expires = expires
    }
}

/// Where prices come from beyond the built-in table.
public struct Pricing: Sendable, Equatable {
    /// A LiteLLM `model_prices_and_context_window.json`, as written in the config (resolve it with `Config.resolve`).
    public var litellmFile: String?
    /// The config's own prices, which win over every other source.
    public var models: [ModelPrice] = []
    /// What one US dollar is in the config's currency, from given moments (earliest first): LiteLLM and built-in prices
    /// are USD and are used in another currency only through it.
    public var usdRates: [UsdRate] = []
    /// The per-million rates an unpriced call counts toward budgets at; nil means the highest input and output rates
    /// among the prices of its provider (`docs/pricing.md`).
    public var unpricedEstimate: TokenRates?

    public init(litellmFile: String? = nil, models: [ModelPrice] = [], usdRates: [UsdRate] = [], unpricedEstimate: TokenRates? = nil) {
        self.litellmFile = litellmFile
        self.models = models
        self.usdRates = usdRates
        self.unpricedEstimate = unpricedEstimate
    }
}

/// Prices for one model from a given moment.
///
/// The plain per-token rates are the standard tier's for calls of any length. A price may add what the provider
/// charges beyond them (`docs/pricing.md`): rates per served tier, rates above long-context thresholds, a one-hour
/// cache-write rate and a price per web search. Each is optional; what a call needs and the price lacks is listed.
public struct ModelPrice: Sendable, Hashable {
    public var model: String
    public var input: TokenPrice
    public var output: TokenPrice
    /// Price of input tokens read from a prompt cache; nil means the input price.
    public var cachedInput: TokenPrice?
    /// Price of input tokens written to a prompt cache (the default, five-minute lifetime); nil means the input price.
    public var cacheWrite: TokenPrice?
    /// Price of reasoning tokens; nil means the output price.
    public var reasoning: TokenPrice?
    /// When this price takes effect, milliseconds since the epoch; nil means always.
    public var from: Int64?
    /// Price of input tokens written to a prompt cache with a one-hour lifetime; nil means none is known.
    public var cacheWrite1h: TokenPrice?
    /// Price of one server-side web search; nil means none is known.
    public var webSearchRequest: Money?
    /// Rates for calls served on other tiers, by `ServiceTier.priceKey` name (`priority`, `flex`, `batch`, …). A tier
    /// is priced when its rates give an input price; a rate it leaves out is the standard one.
    public var tiers: [String: TokenRates]
    /// Rates for calls whose whole input is above a threshold, lowest threshold first.
    public var longContext: [LongContextRates]

    public init(
        model: String, input: TokenPrice, output: TokenPrice, cachedInput: TokenPrice? = nil,
        cacheWrite: TokenPrice? = nil, reasoning: TokenPrice? = nil, from: Int64? = nil, cacheWrite1h: TokenPrice? = nil,
        webSearchRequest: Money? = nil, tiers: [String: TokenRates] = [:], longContext: [LongContextRates] = []
    ) {
        self.model = model
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.reasoning = reasoning
        self.from = from
        self.cacheWrite1h = cacheWrite1h
        self.webSearchRequest = webSearchRequest
        self.tiers = tiers
        self.longContext = longContext.sorted { $0.above < $1.above }
    }

    /// The standard rates as a `TokenRates`.
    public var standardRates: TokenRates {
        TokenRates(input: input, output: output, cachedInput: cachedInput, cacheWrite: cacheWrite, cacheWrite1h: cacheWrite1h)
    }
}

/// One US dollar in the config's currency, exact, from a moment on.
public struct UsdRate: Sendable, Hashable {
    /// Millionths of the currency per dollar (`0.92` is 920,000): at most six decimal places.
    public var micros: Int64
    /// When the rate takes effect, milliseconds since the epoch; nil means always.
    public var from: Int64?

    public init(micros: Int64, from: Int64? = nil) {
        self.micros = micros
        self.from = from
    }
}

/// Per-token rates that override others where they are set (a tier's, a long-context threshold's).
public struct TokenRates: Sendable, Hashable {
    public var input: TokenPrice?
    public var output: TokenPrice?
    public var cachedInput: TokenPrice?
    public var cacheWrite: TokenPrice?
    public var cacheWrite1h: TokenPrice?

    public init(
        input: TokenPrice? = nil, output: TokenPrice? = nil, cachedInput: TokenPrice? = nil, cacheWrite: TokenPrice? = nil,
        cacheWrite1h: TokenPrice? = nil
    ) {
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.cacheWrite1h = cacheWrite1h
    }

    public var isEmpty: Bool { self == TokenRates() }
}

/// The rates of calls whose whole input (plain, cached and cache writes) is more than `above` tokens.
public struct LongContextRates: Sendable, Hashable {
    public var above: Int64
    /// Standard-tier rates above the threshold; a rate left out is the one below it.
    public var rates: TokenRates
    /// Per-tier rates above the threshold; a rate left out is the standard one above it.
    public var tiers: [String: TokenRates]

    public init(above: Int64, rates: TokenRates, tiers: [String: TokenRates] = [:]) {
        self.above = above
        self.rates = rates
        self.tiers = tiers
    }
}

/// What the collector does with the provider's answer when the client leaves before its end.
public enum ClientAbortMode: String, Sendable, CaseIterable {
    /// Keep reading it (without keeping it) until the usage arrives or it ends, up to `drain_timeout`: the real usage.
    case drain
    /// Close the upstream at once and log an estimate of the usage, marked `usage_estimated`.
    case cancel
}

/// When the collector forces log lines to disk.
public enum FsyncMode: String, Sendable, CaseIterable {
    case always
    case interval
    case never
}

/// The `collector:` section.
public struct CollectorSettings: Sendable, Equatable {
    /// Names this collector's folder under `log_dir`; must differ between collectors sharing a log directory.
    public var id = "c1"
    /// `host:port` to listen on.
    public var listen = "127.0.0.1:4000"
    public var logDir = "var/log"
    public var segmentMaxBytes: Int64 = 64 << 20
    public var segmentMaxAgeMs: Int64 = 60_000
    public var fsync: FsyncMode = .interval
    public var fsyncIntervalMs: Int64 = 1000
    public var revocations = "var/revoked.tsv"
    public var reloadIntervalMs: Int64 = 2000
    public var hashSecretEnv = "TALLY_HASH_SECRET"
    public var adminTokenEnv = "TALLY_ADMIN_TOKEN"
    /// Characters of redacted prompt kept as a preview; 0 keeps no prompt text at all.
    public var previewChars = 0
    /// Extra PCRE2 patterns to redact from previews, beyond the built-in ones.
    public var redact: [String] = []
    /// How long the collector keeps reading a provider's answer after the client has gone, for its usage.
    public var drainTimeoutMs: Int64 = 120_000
    /// What the collector does when a client leaves mid-response.
    public var onClientAbort: ClientAbortMode = .drain
    /// How long a stopping collector lets calls in flight finish; the ones still running then are logged as cut off.
    public var shutdownGraceMs: Int64 = 30_000
    /// Connecting to a provider (TCP and TLS).
    public var upstreamConnectTimeoutMs: Int64 = 10_000
    /// The longest silence from a provider once a call is sent: before its answer's first byte, and between chunks. A
    /// non-streamed answer is silent until it is whole, so this outlasts the providers' and their SDKs' own limits
    /// (10 minutes for a non-streamed call): the client's timeout, not the collector's, ends a slow call.
    public var upstreamReadTimeoutMs: Int64 = 1_800_000
    /// The longest a whole call may take, from sending it to the answer's last byte (long reasoning calls and slow
    /// streams run for many minutes; the providers' own limits are below this).
    public var upstreamCallTimeoutMs: Int64 = 3_600_000
    /// How long a new call waits for room in the log queue when the log cannot be written; then it is refused (503),
    /// never forwarded unlogged.
    public var logQueueWaitMs: Int64 = 5_000
    /// Usage events the log queue holds, counting calls in progress and the batch being written: the collector's
    /// memory bound while the log cannot be written.
    public var logQueueSize = 8192
    /// How long a client connection may sit idle between calls, or take to send a request's head, before it is closed.
    public var clientIdleTimeoutMs: Int64 = 75_000
    /// The longest a client may take to send a request's body, from its head to its last byte.
    public var requestReadTimeoutMs: Int64 = 300_000
    /// The most connections the collector opens to one provider origin from one event loop (it runs one loop per core);
    /// a call that finds them all busy waits for one, at most `upstream_connect_timeout`.
    public var upstreamMaxConnections = 2048
    /// How long an idle keep-alive connection to a provider is kept for the next call before it is closed.
    public var upstreamIdleTimeoutMs: Int64 = 30_000

    public init() {}
}

/// What a runaway key triggers.
public enum RunawayAction: String, Sendable, CaseIterable {
    case report
    case revoke
}

/// The `audit:` section.
public struct AuditSettings: Sendable, Equatable {
    public var db = "var/tally.sqlite"
    public var reportsDir = "var/reports"
    /// IANA timezone for calendar periods (days, weeks, months).
    public var timezone = "UTC"
    public var alertThresholds: [Ratio] = ["0.5", "0.8", "0.9", "1.0"].map { try! Ratio(parsing: $0) }
    public var duplicateWindowMs: Int64 = 24 * 3_600_000
    public var retryLoop = RetryLoop()
    public var runaway = Runaway()
    /// Environment variable holding a Slack-compatible webhook URL for alerts.
    public var webhookURLEnv: String?
    public var nearDuplicates = NearDuplicates()
    /// Whether the audit applies its own reallocation proposals instead of waiting for `tally realloc approve`.
    public var autoApprove = false

    public init() {}

    public struct RetryLoop: Sendable, Equatable {
        public var minRepeats = 5
        public var withinMs: Int64 = 120_000
        public init() {}
    }

    public struct Runaway: Sendable, Equatable {
        public var maxRequestsPerMinute = 600
        public var maxSpendPerHour = Money(picos: 50 * Money.scale)
        public var action: RunawayAction = .report
        /// With `action: revoke`, how long after its last call over a limit a runaway key stays revoked.
        public var cooldownMs: Int64 = 3_600_000
        public init() {}
    }

    public struct NearDuplicates: Sendable, Equatable {
        /// Prompts whose SimHashes differ in at most this many of 64 bits are near duplicates.
        public var maxDistance = 3
        /// Whether near duplicates count as waste (they are always reported).
        public var countAsWaste = false
        public init() {}
    }
}
