/// The API shapes Tally knows how to forward and read usage from; each is one adapter in the collector.
public enum ProviderKind: String, Sendable, CaseIterable {
    case openai
    case anthropic
    /// Google's Gemini API, native (`generateContent`).
    case gemini
    /// Azure OpenAI (deployment routes, `api-key`).
    case azure

    /// The API's name as reports show it.
    public var displayName: String {
        switch self {
        case .openai: "OpenAI"
        case .anthropic: "Anthropic"
        case .gemini: "Google Gemini"
        case .azure: "Azure OpenAI"
        }
    }
}
