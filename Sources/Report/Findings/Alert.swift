import TallyCore

/// A budget crossing one of `audit.alert_thresholds` in a period, with the moment the ledger shows it happened: found
/// by the audit, kept in the ledger's `alerts`, posted to the webhook, and written to `alerts.csv`.
public struct Alert: Sendable, Equatable {
    public var scope: BudgetScope
    public var id: String
    public var period: BudgetPeriod
    public var periodLabel: String
    public var threshold: Ratio
    /// The timestamp of the call that took spend to the threshold.
    public var crossedAt: Int64
    /// Spend just after that call.
    public var spend: Money
    public var limit: Money
    /// When the webhook took it; nil while it has not (or no webhook is configured).
    public var notifiedAt: Int64?
    /// Why the last post failed, if it did.
    public var notifyError: String?

    public init(
        scope: BudgetScope, id: String, period: BudgetPeriod, periodLabel: String, threshold: Ratio, crossedAt: Int64, spend: Money,
        limit: Money,
        notifiedAt: Int64? = nil, notifyError: String? = nil
    ) {
        self.scope = scope
        self.id = id
        self.period = period
        self.periodLabel = periodLabel
        self.threshold = threshold
        self.crossedAt = crossedAt
        self.spend = spend
        self.limit = limit
        self.notifiedAt = notifiedAt
        self.notifyError = notifyError
    }
}
