/// Who a key's spend belongs to, as the config said when the call was ingested (the ledger's `attributions` rows).
package struct Attribution: Hashable, Sendable {
    package var key: String
    /// False for a key the config does not list (a removed key): its calls stay in the ledger as `unknown`.
    package var known: Bool
    package var user: String
    package var project: String
    package var team: String
    package var org: String

    package init(key: String, known: Bool, user: String, project: String, team: String, org: String) {
        self.key = key
        self.known = known
        self.user = user
        self.project = project
        self.team = team
        self.org = org
    }
}
