// The domain enums every module speaks in; their raw values are stored and written in files, so never change one.

/// A calendar period a budget resets on, in the audit's timezone.
public enum BudgetPeriod: String, Sendable, CaseIterable {
    case day
    case week
    case month
}

/// A spending limit for one period.
public struct Budget: Sendable, Equatable {
    public var limit: Money
    public var period: BudgetPeriod
    /// Hard budgets revoke keys on breach; soft ones (`hard: false`) only alert.
    public var hard: Bool

    public init(limit: Money, period: BudgetPeriod, hard: Bool = true) {
        self.limit = limit
        self.period = period
        self.hard = hard
    }
}

/// Where a budget is set.
public enum BudgetScope: String, Sendable, CaseIterable {
    case org, team, user, key
}

/// One kind of waste the audit looks for (`docs/waste-and-reallocation.md`). A struct rather than an enum, so that a
/// kind a newer Tally stored in the ledger is kept and written as it is rather than dropped.
public struct WasteKind: RawRepresentable, Hashable, Sendable, Comparable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }

    /// The same prompt (`prompt_hash`), model and team again within `audit.duplicate_window` of a successful call.
    public static let exactDuplicate: WasteKind = "exact_duplicate"
    /// A prompt whose SimHash is within `audit.near_duplicates.max_distance` bits of an earlier one in the window.
    public static let nearDuplicate: WasteKind = "near_duplicate"
    /// At least `audit.retry_loop.min_repeats` identical prompts from one key within `audit.retry_loop.within`.
    public static let retryLoop: WasteKind = "retry_loop"
    /// A key over `audit.runaway`'s request or spend rate.
    public static let runaway: WasteKind = "runaway"

    /// The kinds this Tally finds, in the order reports list them.
    public static let known: [WasteKind] = [.exactDuplicate, .nearDuplicate, .retryLoop, .runaway]

    /// Whether this Tally finds this kind.
    public var isKnown: Bool { Self.known.contains(self) }

    /// Known kinds in `known`'s order, then others by name.
    public static func < (a: Self, b: Self) -> Bool {
        switch (known.firstIndex(of: a), known.firstIndex(of: b)) {
        case (let x?, let y?): x < y
        case (_?, nil): true
        case (nil, _?): false
        case (nil, nil): a.rawValue < b.rawValue
        }
    }

    public var description: String { rawValue }
}
