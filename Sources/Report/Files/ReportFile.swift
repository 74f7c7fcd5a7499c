import TallyCore

/// One file of a period's report: its name in the month's folder, and how it is written from the report's values.
///
/// `ReportFolder.files` lists every file in the order they are written; a new report file is one type that conforms
/// here and one entry there (and its rows, if new, a field of `PeriodReport` that the builder fills).
public protocol ReportFile: Sendable {
    /// The file's name in the month's folder.
    var name: String { get }

    /// Hands the file's bytes to `write`, in pieces (a large file is never whole in memory).
    func write(_ report: PeriodReport, to write: ([UInt8]) throws(FileIOError) -> Void) throws(FileIOError)
}

/// A report file small enough to be rendered whole: the CSV files over the month's rows, and the HTML page.
public protocol TextReportFile: ReportFile {
    func render(_ report: PeriodReport) -> String
}

extension TextReportFile {
    public func write(_ report: PeriodReport, to write: ([UInt8]) throws(FileIOError) -> Void) throws(FileIOError) {
        try write(Array(render(report).utf8))
    }
}

extension ReportFile {
    /// The whole file as text, for callers that want it in memory (tests, small reports).
    public func text(_ report: PeriodReport) throws(FileIOError) -> String {
        var text = ""
        try write(report) { (bytes: [UInt8]) throws(FileIOError) in text += String(decoding: bytes, as: UTF8.self) }
        return text
    }
}
