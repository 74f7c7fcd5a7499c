// swift-tools-version: 6.2
import PackageDescription

// Dependencies are named once and reused; only versions listed in the machine doc resolve here.
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let crypto: Target.Dependency = .product(name: "Crypto", package: "swift-crypto")
let grdb: Target.Dependency = .product(name: "GRDB", package: "GRDB.swift")
// The SQLite C API GRDB builds on, for the ingest's prepared inserts.
let grdbSQLite: Target.Dependency = .product(name: "GRDBSQLite", package: "GRDB.swift")
let yams: Target.Dependency = .product(name: "Yams", package: "Yams")
let hummingbird: Target.Dependency = .product(name: "Hummingbird", package: "hummingbird")
let httpClient: Target.Dependency = .product(name: "AsyncHTTPClient", package: "async-http-client")
let serviceLifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let unixSignals: Target.Dependency = .product(name: "UnixSignals", package: "swift-service-lifecycle")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let httpTypes: Target.Dependency = .product(name: "HTTPTypes", package: "swift-http-types")
let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioEmbedded: Target.Dependency = .product(name: "NIOEmbedded", package: "swift-nio")
// The collector's upstream TLS, and the server's graceful quiescing.
let nioSSL: Target.Dependency = .product(name: "NIOSSL", package: "swift-nio-ssl")
let nioExtras: Target.Dependency = .product(name: "NIOExtras", package: "swift-nio-extras")

// Tally builds and runs on Linux with glibc: the file and segment code calls Glibc directly, and CMemory uses
// malloc_trim and mallopt. It declares no Apple platform, since it supports none.
let package = Package(
    name: "Tally",
    products: [
        .executable(name: "tally", targets: ["tally"]),
        .executable(name: "tally-collector", targets: ["tally-collector"]),
        .library(name: "TallyCore", targets: ["TallyCore"]),
        .library(name: "UsageLog", targets: ["UsageLog"]),
        .library(name: "TallyConfig", targets: ["TallyConfig"]),
        .library(name: "Collector", targets: ["Collector"]),
        .library(name: "TallyLedger", targets: ["TallyLedger"]),
        .library(name: "Auditor", targets: ["Auditor"]),
        .library(name: "Report", targets: ["Report"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // C libraries from Debian, as GRDB does for SQLite.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPCRE2", providers: [.apt(["libpcre2-dev"])]),
        // libdeflate compresses closing segments about twice as fast as zlib at a better ratio; zlib still reads them.
        .systemLibrary(name: "CDeflate", providers: [.apt(["libdeflate-dev"])]),
        // What Swift does not expose: the compiler's prefetch hint (the waste scan is bound by memory latency) and
        // glibc's malloc_trim (the audit's phases hand back what they freed).
        .systemLibrary(name: "CMemory"),

        // The values every module shares: money, ratios and token prices, timestamps, JSON reading and writing, file
        // I/O and atomic files, hex, the provider kinds.
        .target(name: "TallyCore", dependencies: [crypto]),
        // What both ends of the log need: the event model, segment writer and reader, prompt hashing.
        .target(name: "UsageLog", dependencies: ["TallyCore", "CZlib", "CDeflate", crypto]),
        // The YAML config file and the value types only the config speaks in (durations, sizes).
        .target(name: "TallyConfig", dependencies: ["TallyCore", yams]),
        // Deterministic synthetic usage logs, written through the real segment writer.
        .target(name: "Synth", dependencies: ["TallyCore", "UsageLog", "TallyConfig"]),
        .target(
            name: "Collector",
            dependencies: [
                "TallyCore", "UsageLog", "TallyConfig", "CPCRE2", crypto, serviceLifecycle, unixSignals, logging, nioCore, nioHTTP1,
                nioPosix, nioSSL, nioExtras,
            ]),
        // The ledger: the only code that speaks SQL (schema, migrations, scan blocks, the audit lock, typed reads and
        // writes); the Auditor is logic over the values it returns.
        .target(name: "TallyLedger", dependencies: ["TallyCore", "UsageLog", "Report", grdb, grdbSQLite, crypto]),
        .target(
            name: "Auditor",
            dependencies: [
                "TallyCore", "UsageLog", "TallyConfig", "TallyLedger", "Report", "CMemory", crypto, httpClient, nioCore, nioHTTP1,
            ]),
        // Report values and writers; the auditor fills the values, the writers never see a database.
        .target(name: "Report", dependencies: ["TallyCore"]),
        // The CLI lives in a library so that tests drive it through the real argument parsing.
        // What `tally` and `tally-collector` share: `collect`, the config option, exit codes, the JSON log handler.
        .target(name: "TallyCommand", dependencies: [argumentParser, logging, "TallyCore", "TallyConfig", "Collector"]),
        .target(
            name: "TallyCLI",
            dependencies: [
                argumentParser, logging, "TallyCore", "UsageLog", "TallyConfig", "Synth", "Collector", "TallyLedger", "Auditor", "Report",
                "TallyCommand",
            ]),
        .executableTarget(name: "tally", dependencies: ["TallyCLI"]),
        // The collector alone: none of the auditor, the ledger (SQLite) or the reports is linked.
        .executableTarget(name: "tally-collector", dependencies: ["TallyCommand"]),

        // What several test targets share: blocking work off the cooperative pool, loopback sockets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "UsageLogTests", dependencies: ["TallyCore", "UsageLog", crypto]),
        .testTarget(name: "TallyConfigTests", dependencies: ["TallyCore", "TallyConfig"]),
        .testTarget(name: "SynthTests", dependencies: ["Synth", "TallyCore", "UsageLog", "TallyConfig"]),
        .testTarget(
            name: "CollectorTests",
            dependencies: [
                "Collector", "TallyCore", "UsageLog", "TallyConfig", "Synth", "TestSupport", hummingbird, httpClient, serviceLifecycle,
                logging, nioCore, nioHTTP1, nioPosix, nioSSL, nioEmbedded, httpTypes,
            ]),
        .testTarget(
            name: "AuditorTests",
            dependencies: [
                "Auditor", "TallyLedger", "TallyCore", "TallyConfig", "UsageLog", "Report", "TestSupport", grdb, hummingbird, logging,
            ]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "TallyCore", "TallyConfig", "UsageLog"]),
        // Golden report files are read from the source tree by path, not bundled.
        .testTarget(
            name: "TallyCLITests",
            dependencies: [
                "TallyCLI", "TallyCore", "TallyConfig", "UsageLog", "TallyLedger", "Auditor", "Report", "TestSupport", crypto,
                argumentParser,
                grdb,
            ],
            exclude: ["Golden"]),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
