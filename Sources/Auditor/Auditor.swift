import TallyLedger

/// The auditor: ingest of log segments into the SQLite ledger, pricing, attribution, budgets, waste and reallocation.
///
/// `Ledger` owns the database (`docs/ledger.md`); `Ingest` brings segments into it exactly once, priced by a
/// `PriceBook` and attributed through the config; `AttributionQuery` reads spend back out by any dimensions.
public enum Auditor {}
