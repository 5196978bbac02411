//! Go-style durations (`168h`, `1h30m`, `500ms`), the format of Distribution's config values.

use std::time::Duration;

/// Parses a Go duration string: a sequence of decimal numbers, each with a unit of `ns`, `us`,
/// `µs`, `ms`, `s`, `m` or `h`. Negative and fractional values are rejected.
pub fn parse_go_duration(value: &str) -> Result<Duration, String> {
    let invalid = || format!("{value:?} is not a duration; write it like 30s, 10m or 168h");
    if value.is_empty() {
        return Err(invalid());
    }

    let mut total = Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];

        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let nanos_per_unit: u64 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];

        let nanos = number.checked_mul(nanos_per_unit).ok_or_else(invalid)?;
        total = total.checked_add(Duration::from_nanos(nanos)).ok_or_else(invalid)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("10s"), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in ["", "10", "h", "-1h", "1.5h", "1d", "1h 2m", "99999999999999999999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
