/// The auditor: ingest of log segments into the SQLite ledger, pricing, attribution, budgets, waste and reallocation.
///
/// So far it holds the pricing engine (`PriceBook`, `PriceEntry`); the ledger and the audit arrive with issues 4 and 5.
public enum Auditor {}
