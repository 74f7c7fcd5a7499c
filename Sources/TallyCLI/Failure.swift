import Auditor
import Synth
import TallyCommand
import TallyLedger

/// Runs a command body, printing any failure once and turning it into the exit code that names its kind: the
/// audit's and the generator's failures here, the config's, the files' and the collector's in `TallyCommand`.
func runReportingFailures(_ body: () async throws -> Void) async throws {
    try await TallyCommand.runReportingFailures(
        classify: { error in
            switch error {
            case let error as AuditError: Failure(["tally: \(error.message)"], status: exitStatus(error.code))
            case let error as SynthError: Failure(["tally: \(error.message)"], status: ExitStatus.config)
            default: nil
            }
        }, body)
}

/// The exit status for each kind of audit failure.
func exitStatus(_ code: AuditError.Code) -> Int32 {
    switch code {
    case .locked: ExitStatus.tryAgain
    case .data: ExitStatus.dataError
    case .usage: ExitStatus.usage
    case .config: ExitStatus.config
    default: ExitStatus.ioError
    }
}
