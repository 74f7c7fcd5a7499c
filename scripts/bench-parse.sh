#!/usr/bin/env bash
# Line-reader speed on one synthetic segment, release build: Tally's fast ingest reader, its generic reader and
# Foundation's JSONDecoder (a Decodable of the core fields), median of 3 passes each. The harness package is made
# in a temporary folder and depends on this repository by path.
#   scripts/bench-parse.sh [SEGMENT.jsonl.gz]      (default: 200,000 fresh synthetic events)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
scripts/setup.sh
work="$(mktemp -d /tmp/tally-parse-XXXXXX)"
segment="${1:-}"
if [ -z "$segment" ]; then
  swift build -c release --static-swift-stdlib --product tally >/dev/null
  "$(swift build -c release --show-bin-path)/tally" synth --config fixtures/demo/tally.yaml --events 200000 --collectors 1 \
    --seed 1 --end 2026-11-22T00:00:00Z --out "$work/log" >/dev/null
  segment="$(ls "$work"/log/*/*.jsonl.gz | head -1)"
fi
mkdir -p "$work/harness/Sources/parsebench"
cat > "$work/harness/Package.swift" <<SWIFT
// swift-tools-version: 6.2
import PackageDescription
let package = Package(name: "parsebench", platforms: [.macOS(.v15)],
    dependencies: [.package(path: "$repo")],
    targets: [.executableTarget(name: "parsebench", dependencies: [.product(name: "UsageLog", package: "main")])])
SWIFT
cat > "$work/harness/Sources/parsebench/main.swift" <<'SWIFT'
import Foundation
import UsageLog

var collected: [[UInt8]] = []
try SegmentReader.read(path: CommandLine.arguments[1]) { _, line in collected.append(Array(line)) }
let lines = collected
print("\(lines.count) lines, \(lines.reduce(0) { $0 + $1.count } / max(1, lines.count)) bytes each")
struct Core: Decodable {
    var v: Int; var id: String; var ts: String; var collector: String; var key: String; var provider: String
    var endpoint: String; var model: String; var status: Int; var outcome: String; var stream: Bool?; var usage: U?
    var latency_ms: Int?; var prompt_hash: String?; var prompt_sim: String?; var user: String?; var tags: [String: String]?
    struct U: Decodable { var input: Int; var output: Int; var cached_input: Int; var cache_write: Int; var reasoning: Int }
}
@MainActor func measure(_ name: String, _ body: ([UInt8]) throws -> Void) rethrows {
    var rates: [Double] = []
    for _ in 0..<3 {
        let start = ContinuousClock.now
        for line in lines { try body(line) }
        rates.append(Double(lines.count) / (ContinuousClock.now - start).seconds)
    }
    print("\(name): \(Int(rates.sorted()[1])) lines/s")
}
try measure("fast reader (UsageEvent(fastLine:))   ") { line in _ = try line.withUnsafeBufferPointer { try UsageEvent(fastLine: $0) } }
try measure("generic reader (UsageEvent(jsonLine:))") { line in _ = try line.withUnsafeBufferPointer { try UsageEvent(jsonLine: $0) } }
let decoder = JSONDecoder()
try measure("Foundation JSONDecoder                ") { line in _ = try decoder.decode(Core.self, from: Data(line)) }
SWIFT
(cd "$work/harness" && swift build -c release >/dev/null && .build/release/parsebench "$segment")
