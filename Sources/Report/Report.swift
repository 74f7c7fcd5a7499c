/// CSV and HTML report writers over plain values (no database handle), so they are testable on their own.
///
/// Its parts arrive with the reports issue; the target exists now so that the module graph is fixed from the start.
public enum Report {}
