import Testing

@testable import UsageLog

@Suite("Event ids")
struct EventIDTests {
    /// Ids from the secure source are UUIDv7 with the given time, and their 74 random bits differ from id to id, in
    /// both halves (the first 12 bits after the version, the last 62 after the variant).
    @Test func secureIdsAreDistinctUUIDv7s() {
        let ms: Int64 = 1_764_000_000_123
        let ids = (0..<10_000).map { _ in EventID.make(milliseconds: ms) }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(100) {
            let hex = Array(id.filter { $0 != "-" })
            #expect(id.count == 36 && hex.count == 32)
            #expect(UInt64(String(hex[0..<12]), radix: 16) == UInt64(ms), "48 bits of milliseconds")
            #expect(hex[12] == "7", "version 7")
            #expect("89ab".contains(hex[16]), "variant 10")
        }
        #expect(Set(ids.map { $0.dropFirst(15).prefix(3) }).count > 1000, "the 12 random bits after the version vary")
        #expect(Set(ids.map { $0.suffix(12) }).count == ids.count, "the random low bits vary")
    }
}
