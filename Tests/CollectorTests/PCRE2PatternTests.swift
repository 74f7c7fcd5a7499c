import Collector
import Testing

@Suite("PCRE2 patterns")
struct PCRE2PatternTests {
    @Test func compilesWithJITAndMatches() throws {
        let pattern = try PCRE2Pattern("(?i)project-[a-z]+-secret")
        #expect(pattern.isJITCompiled)
        #expect(pattern.matches("see PROJECT-apollo-SECRET here"))
        #expect(!pattern.matches("project-42-secret"))
        #expect(try PCRE2Pattern("\\bcafé\\b").matches("un café noir"), "UTF mode")
    }

    @Test func badPatternsSayWhy() {
        #expect(PCRE2Pattern.problem(with: "(unclosed")?.contains("missing closing parenthesis") == true)
        #expect(PCRE2Pattern.problem(with: "[a-z]+") == nil)
    }
}
