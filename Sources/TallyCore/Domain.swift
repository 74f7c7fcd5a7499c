// The domain enums every module speaks in; their raw values are stored and written in files, so never change one.

/// A calendar period a budget resets on, in the audit's timezone.
public enum BudgetPeriod: String, Sendable, CaseIterable {
    case day
    case week
    case month
}

/// Where a budget is set.
public enum BudgetScope: String, Sendable, CaseIterable {
    case org, team, user, key
}

/// One kind of waste the audit looks for (`docs/waste-and-reallocation.md`).
public enum WasteKind: String, Sendable, CaseIterable, Comparable {
    /// The same prompt (`prompt_hash`), model and team again within `audit.duplicate_window` of a successful call.
    case exactDuplicate = "exact_duplicate"
    /// A prompt whose SimHash is within `audit.near_duplicates.max_distance` bits of an earlier one in the window.
    case nearDuplicate = "near_duplicate"
    /// At least `audit.retry_loop.min_repeats` identical prompts from one key within `audit.retry_loop.within`.
    case retryLoop = "retry_loop"
    /// A key over `audit.runaway`'s request or spend rate.
    case runaway

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
