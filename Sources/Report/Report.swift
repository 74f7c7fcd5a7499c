/// Report writers over plain values (no database handle), so they are testable on their own: the spend breakdown as
/// an aligned table, CSV or JSON.
public enum Report {}
