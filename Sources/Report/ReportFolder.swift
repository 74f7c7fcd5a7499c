import TallyCore

/// A period's report files in one folder (`<reports_dir>/<period>/`), each replaced atomically, with a
/// `manifest.json` written last that names them with their sizes and SHA-256s, so a reader or a filing system can
/// tell a complete, final set from one being refreshed.
public enum ReportFolder {
    /// The files of a report, in the order written (the manifest comes last). Files are written one at a time, and
    /// waste.csv (a busy month's is about a hundred megabytes) a piece at a time, so a report never holds a whole file
    /// set in memory.
    public static let files: [any ReportFile] = [
        AttributionCSV(), FocusCSV(), BudgetsCSV(), AlertsCSV(), BreachesCSV(), RevocationsCSV(), WasteCSV(), ReallocationCSV(),
        UnpricedCSV(), PriceGapsCSV(), QuarantineCSV(), HTMLReport(),
    ]
    /// The files' names, in the order written.
    public static let fileNames = files.map(\.name)
    public static let manifestName = "manifest.json"

    /// Writes every file into `folder` (created when missing), each atomically, then the manifest, and returns what
    /// the manifest lists. A reader sees each file either whole as before or whole as now.
    @discardableResult
    public static func write(_ report: PeriodReport, to folder: String) throws(FileIOError) -> [(name: String, size: Int, sha256: String)] {
        var written: [(name: String, size: Int, sha256: String)] = []
        for document in files {
            let file = try AtomicFile.Writer(folder + "/" + document.name)
            if let page = document as? any TextReportFile {
                try file.append(page.render(report).utf8)  // straight from the string, without a copy of its bytes
            } else {
                try document.write(report) { (bytes: [UInt8]) throws(FileIOError) in try file.append(bytes) }
            }
            let done = try file.commit()
            written.append((document.name, done.size, done.sha256))
        }
        try AtomicFile.write(manifest(report, entries: written), to: folder + "/" + manifestName)
        return written
    }

    static func manifest(_ report: PeriodReport, entries files: [(name: String, size: Int, sha256: String)]) -> [UInt8] {
        var out: [UInt8] = []
        func key(_ name: String) {
            JSONWriter.appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
        }
        func field(_ name: String, _ value: String) {
            key(name)
            JSONWriter.appendString(value, to: &out)
            out += Array(",\n  ".utf8)
        }
        out += Array("{\n  ".utf8)
        field("format", "tally-report v1")
        field("period", report.period)
        field("first_day", report.firstDay)
        field("last_day", report.lastDay)
        field("timezone", report.timezone)
        field("currency", report.currency)
        field("as_of", CSV.time(report.asOf))
        key("final")
        out += Array((report.isFinal ? "true" : "false").utf8)
        out += Array(",\n  ".utf8)
        field("total_cost", CSV.money(report.total))
        key("late")
        if let late = report.late {
            out += Array("{\"requests\":".utf8)
            JSONWriter.appendInteger(late.requests, to: &out)
            out += Array(",\"cost\":".utf8)
            JSONWriter.appendString(CSV.money(late.cost), to: &out)
            out += Array(",\"found_at\":".utf8)
            JSONWriter.appendString(CSV.time(late.foundAt), to: &out)
            out.append(UInt8(ascii: "}"))
        } else {
            out += Array("null".utf8)
        }
        out += Array(",\n  ".utf8)
        if let correction = report.correction {
            // Written only for a corrected report, so that other manifests keep their bytes.
            key("corrected")
            out += Array("{\"calls\":".utf8)
            JSONWriter.appendInteger(correction.calls, to: &out)
            out += Array(",\"change\":".utf8)
            JSONWriter.appendString(correction.change.exact, to: &out)
            out += Array(",\"at\":".utf8)
            JSONWriter.appendString(CSV.time(correction.at), to: &out)
            out += Array("},\n  ".utf8)
        }
        key("files")
        out += Array("[\n".utf8)
        for (i, file) in files.enumerated() {
            out += Array("    {\"name\":".utf8)
            JSONWriter.appendString(file.name, to: &out)
            out += Array(",\"bytes\":".utf8)
            JSONWriter.appendInteger(file.size, to: &out)
            out += Array(",\"sha256\":".utf8)
            JSONWriter.appendString(file.sha256, to: &out)
            out += Array((i == files.count - 1 ? "}\n" : "},\n").utf8)
        }
        out += Array("  ]\n}\n".utf8)
        return out
    }
}
