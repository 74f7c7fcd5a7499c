import Foundation
import TallyCore
import Testing

@testable import TallyConfig

@Suite("Config file")
struct ConfigTests {
    static let minimal = """
        currency: EUR
        default_provider: openai
        providers:
          - {name: openai, kind: openai, base_url: https://api.openai.com, api_key_env: OPENAI_API_KEY}
        orgs: [{id: acme}]
        teams:
          - {id: search, org: acme, pool: true, budget: {limit: 5000.00, period: month}}
        users:
          - {id: alice, team: search, budget: {limit: 500.00, period: month}, away: [{from: 2026-12-20, to: 2027-01-03}]}
        projects:
          - {id: ranking, team: search}
        keys:
          - {id: k-alice-dev, sha256: \(String(repeating: "a1", count: 32)), user: alice, project: ranking, budget: {limit: 20.00, period: day}, privacy: true}
        pricing:
          models:
            - {model: gpt-4o-mini, input: 0.15, output: 0.60, cached_input: 0.075}
        """

    func problems(_ yaml: String) -> [ConfigDiagnostic] {
        do {
            _ = try Config.parse(yaml: yaml, file: "t.yaml")
            return []
        } catch {
            return error.diagnostics
        }
    }

    @Test func theDocumentedExampleLoadsWithItsDefaults() throws {
        let config = try Config.parse(yaml: Self.minimal, file: "t.yaml")
        #expect(config.currency == "EUR")
        #expect(config.teams[0].budget == Budget(limit: try Money(parsing: "5000"), period: .month, hard: true))
        #expect(config.users[0].away == [AwayRange(fromDay: Timestamp.parseDate("2026-12-20")!, toDay: Timestamp.parseDate("2027-01-03")!)])
        #expect(config.keys[0].privacy && !config.keys[0].priority)
        #expect(config.pricing.models[0].cachedInput == TokenPrice(picosPerToken: 75_000))
        #expect(config.collector.segmentMaxBytes == 64 << 20)
        #expect(config.collector.fsync == .interval && config.collector.fsyncIntervalMs == 1000)
        #expect(config.audit.alertThresholds.map(\.description) == ["0.5", "0.8", "0.9", "1"])
        #expect(config.audit.duplicateWindowMs == 86_400_000)
    }

    @Test func wasteAndReallocationSettingsHaveDefaultsAndAreChecked() throws {
        let defaults = try Config.parse(yaml: Self.minimal, file: "t.yaml").audit
        #expect(
            defaults.nearDuplicates == AuditSettings.NearDuplicates() && defaults.nearDuplicates.maxDistance == 3
                && !defaults.nearDuplicates.countAsWaste)
        #expect(defaults.runaway.cooldownMs == 3_600_000 && !defaults.autoApprove)
        let set = try Config.parse(
            yaml: Self.minimal + """

                audit:
                  runaway: {action: revoke, cooldown: 15m}
                  near_duplicates: {max_distance: 5, count_as_waste: true}
                  auto_approve: true
                """, file: "t.yaml"
        ).audit
        #expect(set.runaway.action == .revoke && set.runaway.cooldownMs == 900_000)
        #expect(set.nearDuplicates.maxDistance == 5 && set.nearDuplicates.countAsWaste && set.autoApprove)
        let found = problems(Self.minimal + "\naudit:\n  near_duplicates: {max_distance: 20}\n  auto_approve: sometimes\n")
        #expect(found.map(\.field) == ["audit.near_duplicates.max_distance", "audit.auto_approve"], "\(found)")
    }

    @Test func fileModeIsOctalAndLetsTheOwnerWrite() throws {
        #expect(try Config.parse(yaml: Self.minimal, file: "t.yaml").fileMode == 0o640)
        #expect(try Config.parse(yaml: "file_mode: \"0600\"\n" + Self.minimal, file: "t.yaml").fileMode == 0o600)
        #expect(try Config.parse(yaml: "file_mode: 0660\n" + Self.minimal, file: "t.yaml").fileMode == 0o660)
        for bad in ["0400", "0644x", "1777", "rw-r-----"] {
            #expect(problems("file_mode: \(bad)\n" + Self.minimal).map(\.field) == ["file_mode"], "\(bad)")
        }
    }

    @Test func theDemoConfigLoads() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../fixtures/demo/tally.yaml")
            .standardized.path
        let config = try Config.load(path: path)
        #expect(config.keys.count == 12 && config.teams.count == 3 && config.users.count == 8)
        #expect(Set(config.providers.map(\.kind)) == Set(ProviderKind.allCases))
        #expect(config.resolve(config.audit.db).hasSuffix("fixtures/demo/../../var/demo/tally.sqlite"))
    }

    @Test func unknownKeysAreErrorsWithTheirLine() {
        let yaml = Self.minimal.replacingOccurrences(of: "currency: EUR", with: "currency: EUR\ndefualt_provider: openai")
        let found = problems(yaml)
        #expect(found.count == 1)
        #expect(found.first?.line == 2)
        #expect(found.first?.field == "defualt_provider")
        #expect(found.first?.message.contains("did you mean 'default_provider'") == true)
        #expect(found.first?.description.hasPrefix("t.yaml:2:1: defualt_provider: unknown key") == true)
    }

    @Test(arguments: [
        ("{limit: -5, period: month}", "must be more than 0"),
        ("{limit: 0, period: month}", "must be more than 0"),
        ("{limit: 5e3, period: month}", "not a decimal amount"),
        ("{limit: 10, period: fortnight}", "must be one of day | week | month"),
        ("{period: month}", "is required"),
        ("{limit: 10, period: month, hard: maybe}", "must be true or false"),
        ("{limit: 10, period: month, soft: true}", "unknown key"),
    ])
    func badBudgetsAreNamed(budget: String, message: String) {
        let yaml = Self.minimal.replacingOccurrences(of: "budget: {limit: 5000.00, period: month}", with: "budget: \(budget)")
        let found = problems(yaml)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.field.hasPrefix("teams[0].budget") == true)
        #expect(found.first?.line == 7)
        #expect(found.first?.message.contains(message) == true, "\(found)")
    }

    @Test func duplicateIdsAreErrors() {
        let yaml = Self.minimal.replacingOccurrences(
            of: "  - {id: ranking, team: search}", with: "  - {id: ranking, team: search}\n  - {id: ranking, team: search}")
        let found = problems(yaml)
        #expect(found.map(\.field) == ["projects[1].id"])
        #expect(found.first?.message.contains("already used by projects[0]") == true)
        #expect(found.first?.line == 12)
    }

    @Test func aKeyWhoseUserDoesNotExistIsAnError() {
        let yaml = Self.minimal.replacingOccurrences(of: "user: alice, project", with: "user: alicia, project")
        let found = problems(yaml)
        #expect(found.map(\.field) == ["keys[0].user"])
        #expect(found.first?.message == "user 'alicia' does not exist (known: alice)")
    }

    @Test func everyProblemIsReportedAtOnce() {
        let yaml = Self.minimal
            .replacingOccurrences(of: "currency: EUR", with: "currency: euro")
            .replacingOccurrences(of: "org: acme", with: "org: nowhere")
            .replacingOccurrences(of: "input: 0.15", with: "input: 0.0000001")
        #expect(problems(yaml).map(\.field) == ["currency", "teams[0].org", "pricing.models[0].input"])
    }

    @Test func aKeySecretInTheConfigIsRefused() {
        let yaml = Self.minimal.replacingOccurrences(of: "sha256: \(String(repeating: "a1", count: 32))", with: "sha256: tk-abc")
        #expect(problems(yaml).first?.message.contains("holds a key secret") == true)
    }

    @Test func yamlSyntaxErrorsHaveALine() {
        let found = problems("teams:\n  - {id: x, org: [a\n")
        #expect(found.count == 1 && found[0].line != nil)
    }

    @Test func redactPatternsAreCheckedByTheCallersCompiler() throws {
        let yaml = Self.minimal + "\ncollector:\n  redact: ['ok', 'bad(']\n"
        do {
            _ = try Config.parse(yaml: yaml, file: "t.yaml", validatePattern: { $0.hasSuffix("(") ? "missing )" : nil })
            Issue.record("expected an error")
        } catch {
            #expect(error.diagnostics.map(\.field) == ["collector.redact[1]"])
        }
    }
}

@Suite("Exact money")
struct MoneyTests {
    @Test func parsesAndFormatsWithoutFloatingPoint() throws {
        #expect(try Money(parsing: "5000.00").picos == 5_000 * Money.scale)
        #expect(try Money(parsing: "0.000000000001").picos == 1)
        #expect(try Money(parsing: "-0.25").formatted(places: 2) == "-0.25")
        #expect(Money(picos: 1_234_567_890_123_456).formatted(places: 6) == "1234.567890")
        #expect(Money(picos: 5).formatted(places: 12) == "0.000000000005")
        #expect(Money(picos: 500_000_000_000).formatted(places: 0) == "1", "half rounds away from zero")
        #expect(Money(picos: -500_000_000_000).formatted(places: 0) == "-1")
        #expect(Money(picos: -1).formatted(places: 2) == "0.00")
        for bad in ["", "1,000", "1e3", "1.", ".5", "12.3.4", "$5", "0.0000000000001"] {
            #expect(throws: ValueError.self, "\(bad)") { try Money(parsing: bad) }
        }
    }

    @Test func everyMoneyTextComesFromOneFormatter() throws {
        let small = try Money(parsing: "0.0031")
        let large = try Money(parsing: "1234567.5")
        let tiny = try Money(parsing: "0.000000375")
        // Exports: exact, at least two decimals (JSON) or six (CSV, through the byte writer).
        #expect(small.exact == "0.0031" && large.exact == "1234567.50" && tiny.exact == "0.000000375")
        for (money, text) in [(small, "0.003100"), (large, "1234567.500000"), (tiny, "0.000000375"), (-tiny, "-0.000000375")] {
            var bytes: [UInt8] = []
            money.appendExact(to: &bytes, minimumPlaces: 6)
            #expect(String(decoding: bytes, as: UTF8.self) == text)
            #expect(money.trimmed(minimumPlaces: 6) == text)
        }
        // Sentences: cents, or up to four decimals below one unit; tables: cents with thousands grouped.
        #expect(small.brief == "0.0031" && large.brief == "1234567.50" && tiny.brief == "0.00" && Money(picos: 0).brief == "0.00")
        #expect(large.grouped == "1,234,567.50" && (-large).grouped == "-1,234,567.50" && small.grouped == "0.00")
    }

    @Test func pricesPerMillionAndPerTokenAgreeExactly() throws {
        #expect(try TokenPrice(perMillion: "0.075") == TokenPrice(perToken: "7.5e-08"))
        #expect(try TokenPrice(perMillion: "3.00") == TokenPrice(perToken: "3e-06"))
        #expect(try TokenPrice(perMillion: "0.02") == TokenPrice(perToken: "0.00000002"))
        #expect(try TokenPrice(perMillion: "0.000001").picosPerToken == 1)
        #expect(try TokenPrice(perMillion: "0.075").perMillion == "0.075000")
        #expect(throws: ValueError.self) { try TokenPrice(perMillion: "0.0000001") }
        #expect(throws: ValueError.self) { try TokenPrice(perToken: "1.5e-13") }
        #expect(throws: ValueError.self) { try TokenPrice(perMillion: "-1") }
    }

    /// A year of an enterprise's heaviest traffic at the finest price stays exact.
    @Test func largeTotalsStayExact() throws {
        let price = try TokenPrice(perToken: "7.5e-08")
        var total = Money.zero
        for _ in 0..<1000 { total += price.cost(tokens: 9_000_000_000_000) }
        #expect(total.formatted(places: 2) == "675000000.00")
    }

    @Test func durationsAndSizes() throws {
        #expect(try DurationText.milliseconds("500ms") == 500)
        #expect(try DurationText.milliseconds("2s") == 2000)
        #expect(try DurationText.milliseconds("5m") == 300_000)
        #expect(try DurationText.milliseconds("24h") == 86_400_000)
        #expect(throws: ValueError.self) { try DurationText.milliseconds("5 minutes") }
        #expect(throws: ValueError.self) { try DurationText.milliseconds("m") }
        #expect(try ByteSizeText.bytes("64MiB") == 64 << 20)
        #expect(try ByteSizeText.bytes("4096") == 4096)
        #expect(throws: ValueError.self) { try ByteSizeText.bytes("64 megs") }
    }
}
