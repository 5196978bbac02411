//! `Range` and `Content-Range` header parsing.
//!
//! [`parse_range`] reads the `Range` header of a blob GET (RFC 9110, section 14.2) and checks it
//! against the blob size. Only one range is served. A header listing several ranges is rejected
//! with 416, because serving only the first would return other bytes than the client requested,
//! and `multipart/byteranges` responses are not implemented.
//!
//! [`parse_content_range`] reads the `Content-Range` header of a chunked upload PATCH, in the
//! forms that clients send: the Distribution form `a-b`, the RFC 9110 form `bytes a-b/*` (or with
//! a total length instead of `*`), and `bytes=a-b`.

use crate::storage::ByteRange;

/// The kind of `Range` header that cannot be served. Every kind becomes a 416 response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeErrorKind {
    /// The header is not `bytes=` followed by a valid range-spec.
    Malformed,
    /// The header lists more than one range.
    MultipleRanges,
    /// The range is valid but selects no byte of the blob.
    Unsatisfiable,
}

/// A `Range` header that cannot be served for a blob of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Range {header:?} cannot be served for a blob of {size} bytes ({kind:?})")]
pub struct RangeError {
    pub kind: RangeErrorKind,
    pub header: String,
    pub size: u64,
}

impl From<RangeError> for crate::error::Error {
    fn from(error: RangeError) -> crate::error::Error {
        crate::error::ClientError::RangeNotSatisfiable { range: error.header, size: error.size }.into()
    }
}

/// Parses a `Range` header for a blob of `size` bytes.
///
/// Returns `Ok(None)` when the range unit is not `bytes`, because RFC 9110 requires a server to
/// ignore a range unit it does not understand and send the whole representation. A last
/// position past the end is clamped to the last byte, and a suffix longer than the blob selects
/// the whole blob. A range starting at or past the end, and any range of an empty blob, is
/// [`RangeErrorKind::Unsatisfiable`]. Numbers too large for `u64` saturate, which gives the same
/// result as their exact value would.
pub fn parse_range(header: &str, size: u64) -> Result<Option<ByteRange>, RangeError> {
    let error = |kind| RangeError { kind, header: header.to_owned(), size };

    let Some((unit, set)) = header.split_once('=') else {
        return Err(error(RangeErrorKind::Malformed));
    };
    if !trim_ows(unit).eq_ignore_ascii_case("bytes") {
        return Ok(None);
    }

    let specs: Vec<&str> = set.split(',').map(trim_ows).filter(|spec| !spec.is_empty()).collect();
    let spec = match specs.as_slice() {
        [spec] => *spec,
        [] => return Err(error(RangeErrorKind::Malformed)),
        _ => return Err(error(RangeErrorKind::MultipleRanges)),
    };

    let Some((first, last)) = spec.split_once('-') else {
        return Err(error(RangeErrorKind::Malformed));
    };
    let parse = |digits: &str| match digits {
        "" => Ok(None),
        digits => parse_saturating(digits).map(Some).ok_or_else(|| error(RangeErrorKind::Malformed)),
    };
    let first = parse(first)?;
    let last = parse(last)?;

    let range = match (first, last) {
        (None, None) => return Err(error(RangeErrorKind::Malformed)),
        (Some(first), Some(last)) if last < first => return Err(error(RangeErrorKind::Malformed)),
        (Some(first), _) if first >= size => return Err(error(RangeErrorKind::Unsatisfiable)),
        (Some(first), last) => {
            let end = last.map_or(size - 1, |last| last.min(size - 1));
            ByteRange { start: first, end }
        }
        (None, Some(suffix)) => {
            if suffix == 0 || size == 0 {
                return Err(error(RangeErrorKind::Unsatisfiable));
            }
            ByteRange { start: size - suffix.min(size), end: size - 1 }
        }
    };
    Ok(Some(range))
}

/// HTTP's optional whitespace (RFC 9110, section 5.6.3): spaces and horizontal tabs, and no other
/// character that `str::trim` would remove.
const OWS: [char; 2] = [' ', '\t'];

fn trim_ows(text: &str) -> &str {
    text.trim_matches(OWS)
}

/// Parses a non-empty run of ASCII digits, saturating at `u64::MAX`. Anything else is `None`.
fn parse_saturating(digits: &str) -> Option<u64> {
    if !is_digits(digits) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

/// The byte positions `start..=end` of an upload chunk, from a `Content-Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
}

impl ChunkRange {
    /// Returns the number of bytes in the chunk. [`parse_content_range`] has checked that it fits
    /// in a `u64`.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A rejected `Content-Range` header, by reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentRangeError {
    #[error("Content-Range {0:?} is invalid; send the chunk's byte positions as <start>-<end>")]
    Malformed(String),
    #[error("Content-Range {0:?} ends before it starts")]
    Reversed(String),
    #[error("Content-Range {0:?} has a position or length too large for a 64-bit byte count")]
    Overflow(String),
    #[error("Content-Range {0:?} ends at or past the total length it declares")]
    BeyondTotal(String),
}

/// Parses the `Content-Range` header of an upload PATCH: `a-b`, `bytes a-b/*`, `bytes a-b/<total>`
/// or `bytes=a-b`, where `a` and `b` are inclusive byte positions.
pub fn parse_content_range(header: &str) -> Result<ChunkRange, ContentRangeError> {
    let malformed = || ContentRangeError::Malformed(header.to_owned());
    let overflow = || ContentRangeError::Overflow(header.to_owned());

    let value = trim_ows(header);
    let value = value
        .strip_prefix("bytes ")
        .or_else(|| value.strip_prefix("bytes="))
        .unwrap_or(value)
        .trim_start_matches(OWS);

    let (positions, total) = match value.split_once('/') {
        Some((positions, "*")) => (positions, None),
        Some((positions, total)) => (positions, Some(total)),
        None => (value, None),
    };
    let (start, end) = positions.split_once('-').ok_or_else(malformed)?;

    // Every part must be digits before any is converted, so that malformed text is reported as
    // malformed even when another part is too large for a `u64`.
    let parts = [Some(start), Some(end), total];
    if !parts.into_iter().flatten().all(is_digits) {
        return Err(malformed());
    }
    let start = parse_exact(start, header)?;
    let end = parse_exact(end, header)?;
    let total = total.map(|total| parse_exact(total, header)).transpose()?;

    if end < start {
        return Err(ContentRangeError::Reversed(header.to_owned()));
    }
    (end - start).checked_add(1).ok_or_else(overflow)?;
    if total.is_some_and(|total| end >= total) {
        return Err(ContentRangeError::BeyondTotal(header.to_owned()));
    }
    Ok(ChunkRange { start, end })
}

/// Checks that `text` is a non-empty run of ASCII digits.
fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a non-empty run of ASCII digits into a `u64`, naming `header` in the error.
fn parse_exact(digits: &str, header: &str) -> Result<u64, ContentRangeError> {
    if !is_digits(digits) {
        return Err(ContentRangeError::Malformed(header.to_owned()));
    }
    digits.parse().map_err(|_| ContentRangeError::Overflow(header.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end: u64) -> Option<ByteRange> {
        Some(ByteRange { start, end })
    }

    fn range_error(header: &str, size: u64) -> RangeErrorKind {
        parse_range(header, size).expect_err(header).kind
    }

    #[test]
    fn range_closed() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(range(0, 9)));
        assert_eq!(parse_range("bytes=5-5", 100), Ok(range(5, 5)));
        assert_eq!(parse_range("bytes=99-99", 100), Ok(range(99, 99)));
    }

    #[test]
    fn range_end_past_size_is_clamped() {
        assert_eq!(parse_range("bytes=90-200", 100), Ok(range(90, 99)));
        assert_eq!(parse_range("bytes=0-99999999999999999999999", 100), Ok(range(0, 99)));
    }

    #[test]
    fn range_open_ended() {
        assert_eq!(parse_range("bytes=10-", 100), Ok(range(10, 99)));
        assert_eq!(parse_range("bytes=99-", 100), Ok(range(99, 99)));
    }

    #[test]
    fn range_suffix() {
        assert_eq!(parse_range("bytes=-10", 100), Ok(range(90, 99)));
        assert_eq!(parse_range("bytes=-1", 100), Ok(range(99, 99)));
        assert_eq!(parse_range("bytes=-500", 100), Ok(range(0, 99)));
        assert_eq!(parse_range("bytes=-99999999999999999999999", 100), Ok(range(0, 99)));
    }

    #[test]
    fn range_tolerates_whitespace_and_unit_case() {
        assert_eq!(parse_range("BYTES= 1-2 ", 100), Ok(range(1, 2)));
        assert_eq!(parse_range("bytes=1-2,", 100), Ok(range(1, 2)));
    }

    #[test]
    fn range_other_unit_is_ignored() {
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn range_start_at_or_past_end_is_unsatisfiable() {
        assert_eq!(range_error("bytes=100-", 100), RangeErrorKind::Unsatisfiable);
        assert_eq!(range_error("bytes=100-200", 100), RangeErrorKind::Unsatisfiable);
        assert_eq!(range_error("bytes=99999999999999999999999-", 100), RangeErrorKind::Unsatisfiable);
    }

    #[test]
    fn range_of_empty_blob_is_unsatisfiable() {
        assert_eq!(range_error("bytes=0-", 0), RangeErrorKind::Unsatisfiable);
        assert_eq!(range_error("bytes=0-0", 0), RangeErrorKind::Unsatisfiable);
        assert_eq!(range_error("bytes=-1", 0), RangeErrorKind::Unsatisfiable);
    }

    #[test]
    fn range_zero_suffix_is_unsatisfiable() {
        assert_eq!(range_error("bytes=-0", 100), RangeErrorKind::Unsatisfiable);
    }

    #[test]
    fn range_rejects_whitespace_other_than_ows() {
        assert_eq!(parse_range("bytes=\t5-9\t", 100), Ok(range(5, 9)));
        for header in ["bytes=5-9\u{a0}", "bytes=5-9\n", "bytes=\x0b5-9"] {
            assert_eq!(range_error(header, 100), RangeErrorKind::Malformed, "{header:?}");
        }

        // A unit with other whitespace is not `bytes`, so the header is ignored.
        for header in ["BYTES \x0b= 5-9 ", "\rbytes=5-9"] {
            assert_eq!(parse_range(header, 100), Ok(None), "{header:?}");
        }
    }

    #[test]
    fn content_range_rejects_whitespace_other_than_ows() {
        for header in ["0-9\n", "\x0b0-9", "bytes \u{a0}0-9", "0-9\u{3000}"] {
            assert_eq!(parse_content_range(header), Err(ContentRangeError::Malformed(header.into())), "{header:?}");
        }
        assert_eq!(parse_content_range("\tbytes \t0-9\t"), Ok(ChunkRange { start: 0, end: 9 }));
    }

    #[test]
    fn range_multiple_ranges_are_rejected() {
        assert_eq!(range_error("bytes=0-1,5-6", 100), RangeErrorKind::MultipleRanges);
        assert_eq!(range_error("bytes=0-1, -5", 100), RangeErrorKind::MultipleRanges);
    }

    #[test]
    fn range_malformed() {
        for header in [
            "", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=1", "bytes=5-2", "bytes=+1-2",
            "bytes=1-2x", "bytes=1--2", "bytes=0x1-2", "bytes=1 -2",
        ] {
            assert_eq!(range_error(header, 100), RangeErrorKind::Malformed, "{header:?}");
        }
    }

    #[test]
    fn range_error_keeps_header_and_size() {
        let error = parse_range("bytes=200-", 100).unwrap_err();
        assert_eq!(error.header, "bytes=200-");
        assert_eq!(error.size, 100);
    }

    #[test]
    fn content_range_accepts_client_forms() {
        let expected = ChunkRange { start: 10, end: 19 };
        for header in ["10-19", "bytes 10-19/*", "bytes=10-19", "bytes 10-19/20", "bytes 10-19", " 10-19 "] {
            assert_eq!(parse_content_range(header), Ok(expected), "{header:?}");
        }
        assert_eq!(expected.len(), 10);
    }

    #[test]
    fn content_range_single_byte() {
        let chunk = parse_content_range("0-0").unwrap();
        assert_eq!(chunk, ChunkRange { start: 0, end: 0 });
        assert_eq!(chunk.len(), 1);
    }

    #[test]
    fn content_range_reversed_is_rejected() {
        assert_eq!(parse_content_range("5-4"), Err(ContentRangeError::Reversed("5-4".into())));
    }

    #[test]
    fn content_range_overflow_is_rejected() {
        let max = u64::MAX;
        let whole = format!("0-{max}");
        assert_eq!(parse_content_range(&whole), Err(ContentRangeError::Overflow(whole.clone())));
        let too_big = "0-18446744073709551616";
        assert_eq!(parse_content_range(too_big), Err(ContentRangeError::Overflow(too_big.into())));
        assert_eq!(parse_content_range(&format!("1-{max}")).unwrap().len(), max);
    }

    #[test]
    fn content_range_past_total_is_rejected() {
        let header = "bytes 0-9/5";
        assert_eq!(parse_content_range(header), Err(ContentRangeError::BeyondTotal(header.into())));
    }

    #[test]
    fn content_range_malformed_before_overflow() {
        let header = "3\x7f3\x083\x7f/555555555555555555553333";
        assert_eq!(parse_content_range(header), Err(ContentRangeError::Malformed(header.into())));
        let header = "x-1/99999999999999999999";
        assert_eq!(parse_content_range(header), Err(ContentRangeError::Malformed(header.into())));
        let header = "1-2/99999999999999999999";
        assert_eq!(parse_content_range(header), Err(ContentRangeError::Overflow(header.into())));
    }

    #[test]
    fn content_range_malformed() {
        for header in [
            "", "-", "1-", "-1", "a-b", "1-2x", "1-2/", "1-2/x", "bytes 1-2/*x", "1-2-3", "+1-2",
            "bytes:1-2", "1 - 2", "0x1-2",
        ] {
            assert!(
                matches!(parse_content_range(header), Err(ContentRangeError::Malformed(_))),
                "{header:?} gave {:?}",
                parse_content_range(header)
            );
        }
    }
}
