import Foundation
import TallyCore
import Testing
import UsageLog

@testable import Auditor
@testable import TallyLedger

/// Files Tally creates hold spend, key ids and prompt previews: no world read (0640 unless `file_mode` says otherwise).
@Suite struct FileModeTests {
    func mode(_ path: String) throws -> UInt32 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw CocoaError(.fileNoSuchFile) }
        return UInt32(info.st_mode) & 0o777
    }

    @Test func logsLedgerListAndReportsAreNotWorldReadable() async throws {
        let f = try AuditFixture(yaml: BudgetTests.yaml())
        defer { f.remove() }
        let writer = try SegmentWriter(logDirectory: f.root + "/log", collector: "c2")
        let t0 = Timestamp.parse("2026-11-10T10:00:00Z")!
        try writer.append(line: Array(BudgetTests.call("2026-11-10T10:00:00Z").utf8), now: t0)
        try writer.commit(now: t0)
        let open = try #require(try LogDirectory.segments(root: f.root + "/log").first { !$0.isClosed })
        #expect(try mode(open.path) & 0o007 == 0, "an open segment")
        try writer.close()
        _ = try await f.outcome(asOf: "2026-11-10T12:00:00Z")

        var paths = [f.ledgerPath, f.root + "/var/revoked.tsv", f.root + "/var/reports/2026-11/report.html"]
        paths += try LogDirectory.segments(root: f.root + "/log").map(\.path)
        for path in paths {
            let m = try mode(path)
            #expect(m & 0o007 == 0 && m & 0o600 == 0o600, "\(path): \(String(m, radix: 8))")
        }
    }
}
