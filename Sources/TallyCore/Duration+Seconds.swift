extension Duration {
    /// The duration in seconds, for figures and metrics (never for money).
    public var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }

    /// The duration in milliseconds.
    public var milliseconds: Double { seconds * 1000 }
}
