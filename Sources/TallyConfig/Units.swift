import TallyCore

/// Durations as the config writes them: `500ms`, `2s`, `5m`, `24h`, `7d`.
public enum DurationText {
    /// Milliseconds in a duration; throws for anything else.
    public static func milliseconds(_ text: String) throws(ValueError) -> Int64 {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "5m" must not be read as "5" + "m" of "ms": the longest suffix is tried first.
            if suffix == "s", number.hasSuffix("m") { continue }
            guard !number.isEmpty, number.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int64(number),
                value <= Int64.max / factor
            else { break }
            return value * factor
        }
        throw ValueError("'\(text)' is not a duration (write a whole number and a unit: 500ms, 2s, 5m, 24h, 7d)")
    }

    /// The shortest exact way to write a duration.
    public static func format(milliseconds: Int64) -> String {
        for (suffix, factor) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        where milliseconds != 0 && milliseconds % factor == 0 {
            return "\(milliseconds / factor)\(suffix)"
        }
        return "\(milliseconds)ms"
    }
}

/// Byte sizes as the config writes them: `65536`, `512KiB`, `64MiB`, `1GiB`, `10MB`.
public enum ByteSizeText {
    public static func bytes(_ text: String) throws(ValueError) -> Int64 {
        let units: [(String, Int64)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1),
        ]
        var number = Substring(text)
        var factor: Int64 = 1
        for (suffix, value) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            factor = value
            break
        }
        guard !number.isEmpty, number.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int64(number),
            value <= Int64.max / factor
        else {
            throw ValueError("'\(text)' is not a size (write a whole number and a unit: 512KiB, 64MiB, 1GiB)")
        }
        return value * factor
    }
}
