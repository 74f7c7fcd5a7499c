/// The auditor: ingest of log segments into the SQLite ledger, pricing, attribution, budgets, waste and reallocation.
///
/// Its parts arrive with the auditor issues; the target exists now so that the package's module graph
/// (CLI → Collector / Auditor / Report → TallyConfig → UsageLog) is fixed from the start.
public enum Auditor {}
