//! Fuzzes the `n` and `last` parameters of `_catalog` and tags list, and the page they select.
//!
//! Input layout: text lines. The first line is `n`, the second is `last` (absent when the input
//! has one line), and the remaining lines are the listing's entries, which are sorted and
//! deduplicated as storage returns them.
//!
//! A parsed page size must equal the number in `n`, clamped to `MAX_PAGE_SIZE`, and the selected
//! page must be the entries right after `last`, at most that many, with a next marker exactly
//! when entries remain.

#![no_main]

use containerd_registry::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use containerd_registry::pagination::{Page, PageSizeError};
use libfuzzer_sys::fuzz_target;

/// Returns the page size that an all-digit `n` means, computed without `usize` parsing.
fn expected_size(digits: &str) -> usize {
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_PAGE_SIZE.to_string().len() {
        return MAX_PAGE_SIZE;
    }
    let value: usize = if significant.is_empty() { 0 } else { significant.parse().unwrap() };
    value.min(MAX_PAGE_SIZE)
}

fn check_parse(n: Option<&str>, last: Option<&str>) -> Option<Page> {
    let result = Page::parse(n, last);
    let n = n.filter(|n| !n.is_empty());

    match (n, &result) {
        (None, Ok(page)) => assert_eq!(page.size, DEFAULT_PAGE_SIZE),
        (Some(n), Ok(page)) => {
            assert!(n.bytes().all(|b| b.is_ascii_digit()), "n={n:?} was accepted");
            assert_eq!(page.size, expected_size(n), "n={n:?}");
        }
        (Some(n), Err(PageSizeError(value))) => {
            assert_eq!(value, n);
            assert!(!n.bytes().all(|b| b.is_ascii_digit()), "n={n:?} was rejected");
        }
        (None, Err(error)) => panic!("a missing n was rejected: {error:?}"),
    }

    let page = result.ok()?;
    assert!(page.size <= MAX_PAGE_SIZE);
    assert_eq!(page.last.as_deref(), last.filter(|last| !last.is_empty()));
    Some(page)
}

fn check_select(page: &Page, entries: &[&str]) {
    let (selected, next) = page.select(entries.iter().copied());

    let after_last: Vec<&str> =
        entries.iter().copied().filter(|entry| page.last.as_deref().is_none_or(|last| *entry > last)).collect();
    let expected_len = page.size.min(after_last.len());
    assert_eq!(selected, after_last[..expected_len]);

    let more = page.size > 0 && after_last.len() > expected_len;
    assert_eq!(next, if more { selected.last().copied() } else { None });
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let n = lines.next();
    let last = lines.next();
    let mut entries: Vec<&str> = lines.collect();
    entries.sort_unstable();
    entries.dedup();

    if let Some(page) = check_parse(n, last) {
        check_select(&page, &entries);
    }
});
