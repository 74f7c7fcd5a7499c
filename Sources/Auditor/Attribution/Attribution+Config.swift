import TallyConfig
import TallyLedger

extension Attribution {
    /// The attribution the config gives `key`: its user, its project, the project's team (else the user's), the team's org.
    static func resolving(key: String, config: Config) -> Attribution {
        guard let entry = config.keys.first(where: { $0.id == key }) else {
            return Attribution(key: key, known: false, user: "", project: "", team: "", org: "")
        }
        let user = entry.user ?? ""
        let project = entry.project ?? ""
        let team =
            entry.project.flatMap { id in config.projects.first { $0.id == id }?.team }
            ?? entry.user.flatMap { id in config.users.first { $0.id == id }?.team } ?? ""
        let org = config.teams.first { $0.id == team }?.org ?? ""
        return Attribution(key: key, known: true, user: user, project: project, team: team, org: org)
    }

    /// Every configured key's attribution under the config as it stands, by key id.
    static func owners(_ config: Config) -> [String: Attribution] {
        Dictionary(uniqueKeysWithValues: config.keys.map { ($0.id, resolving(key: $0.id, config: config)) })
    }
}
