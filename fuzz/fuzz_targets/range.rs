//! Fuzzes the `Range` and `Content-Range` parsers.
//!
//! Input layout: the first 8 bytes are the blob size (little-endian `u64`) and the rest is the
//! header value, which both parsers read.
//!
//! An accepted `Range` must select bytes inside the blob, `start <= end < size`, and match a
//! re-computation from the header's numbers. An accepted `Content-Range` must have
//! `start <= end` with a length that fits a `u64`. Both must reject any character outside their
//! grammar: HTTP's optional whitespace is a space or a tab, and nothing else.

#![no_main]

use containerd_registry::range::{parse_content_range, parse_range, ContentRangeError, RangeErrorKind};
use libfuzzer_sys::fuzz_target;

/// Trims HTTP optional whitespace (RFC 9110, section 5.6.3: spaces and tabs).
fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Parses digits that were accepted, saturating at `u64::MAX` like `parse_range` documents.
fn saturating(digits: &str) -> u64 {
    digits.parse().unwrap_or(u64::MAX)
}

/// Returns the one `first-last` spec of a `bytes=` header, with `first` or `last` possibly empty,
/// or `None` when the header is not one byte range of that form.
fn single_spec(header: &str) -> Option<(&str, &str)> {
    let (unit, set) = header.split_once('=')?;
    if !trim_ows(unit).eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = set.split(',').map(trim_ows).filter(|spec| !spec.is_empty());
    let spec = specs.next()?;
    if specs.next().is_some() {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let first_ok = first.is_empty() || is_digits(first);
    let last_ok = last.is_empty() || is_digits(last);
    (first_ok && last_ok && !(first.is_empty() && last.is_empty())).then_some((first, last))
}

fn check_range(header: &str, size: u64) {
    match parse_range(header, size) {
        Ok(Some(range)) => {
            assert!(range.start <= range.end, "{header:?} gave {range:?}");
            assert!(range.end < size, "{header:?} gave {range:?} for size {size}");
            assert!(range.end.checked_sub(range.start).and_then(|d| d.checked_add(1)).is_some());

            let (first, last) = single_spec(header).unwrap_or_else(|| panic!("{header:?} was accepted"));
            let expected_start = if first.is_empty() {
                size - saturating(last).min(size)
            } else {
                saturating(first)
            };
            let expected_end = if first.is_empty() || last.is_empty() {
                size - 1
            } else {
                saturating(last).min(size - 1)
            };
            assert_eq!((range.start, range.end), (expected_start, expected_end), "{header:?}, size {size}");
        }
        Ok(None) => {
            let unit = header.split_once('=').map(|(unit, _)| unit);
            assert!(unit.is_some_and(|unit| !trim_ows(unit).eq_ignore_ascii_case("bytes")), "{header:?}");
        }
        Err(error) => {
            assert_eq!(error.header, header);
            assert_eq!(error.size, size);
            if error.kind == RangeErrorKind::Unsatisfiable {
                assert!(single_spec(header).is_some(), "{header:?} is malformed, not unsatisfiable");
            }
        }
    }
}

/// Returns the start, end and total of a `Content-Range` in one of the forms that
/// `parse_content_range` documents, or `None` for any other text.
fn content_range_parts(header: &str) -> Option<(&str, &str, Option<&str>)> {
    let value = trim_ows(header);
    let value = value.strip_prefix("bytes ").or_else(|| value.strip_prefix("bytes=")).unwrap_or(value);
    let value = value.trim_start_matches([' ', '\t']);

    let (positions, total) = match value.split_once('/') {
        Some((positions, "*")) => (positions, None),
        Some((positions, total)) => (positions, Some(total)),
        None => (value, None),
    };
    let (start, end) = positions.split_once('-')?;
    let all_digits = is_digits(start) && is_digits(end) && total.is_none_or(is_digits);
    all_digits.then_some((start, end, total))
}

fn check_content_range(header: &str) {
    match parse_content_range(header) {
        Ok(chunk) => {
            assert!(chunk.start <= chunk.end, "{header:?} gave {chunk:?}");
            let len = chunk.end.checked_sub(chunk.start).and_then(|d| d.checked_add(1));
            assert_eq!(len, Some(chunk.len()));

            let (start, end, total) = content_range_parts(header).unwrap_or_else(|| panic!("{header:?} was accepted"));
            assert_eq!(start.parse(), Ok(chunk.start));
            assert_eq!(end.parse(), Ok(chunk.end));
            if let Some(total) = total {
                assert!(total.parse::<u64>().is_ok_and(|total| chunk.end < total), "{header:?}");
            }
        }
        Err(ContentRangeError::Malformed(value)) => {
            assert_eq!(value, header);
            assert!(content_range_parts(header).is_none(), "{header:?} is well-formed");
        }
        Err(
            ContentRangeError::Reversed(value)
            | ContentRangeError::Overflow(value)
            | ContentRangeError::BeyondTotal(value),
        ) => {
            assert_eq!(value, header);
            assert!(content_range_parts(header).is_some(), "{header:?} is malformed");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((size, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    check_range(header, u64::from_le_bytes(*size));
    check_content_range(header);
});
