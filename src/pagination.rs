//! The `n` and `last` query parameters of `_catalog` and tags list, and the entries of one page.
//!
//! A page contains the entries after `last` in lexical order, at most `n` of them. A missing or
//! empty `n` means [`DEFAULT_PAGE_SIZE`], and an `n` larger than [`MAX_PAGE_SIZE`] is clamped to
//! it. The HTTP handlers in `http::tags` decode the query and build the `Link` header.

use crate::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// The page of a listing that a client requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Maximum number of entries in the page, at most [`MAX_PAGE_SIZE`].
    pub size: usize,
    /// The entry after which the page starts; `None` starts at the first entry.
    pub last: Option<String>,
}

/// An `n` query parameter that is not a page size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("n={0:?} is not a page size; send a non-negative integer")]
pub struct PageSizeError(pub String);

impl Page {
    /// Parses the decoded `n` and `last` query parameters. `n` must be empty or ASCII digits, and
    /// an empty `last` counts as absent.
    pub fn parse(n: Option<&str>, last: Option<&str>) -> Result<Page, PageSizeError> {
        let size = match n.filter(|n| !n.is_empty()) {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                // All digits: only a number too large for `usize` fails to parse, and it is clamped.
                n.parse::<usize>().unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)
            }
            Some(n) => return Err(PageSizeError(n.to_owned())),
        };
        let last = last.filter(|last| !last.is_empty()).map(str::to_owned);
        Ok(Page { size, last })
    }

    /// Returns the entries of this page and, when more entries follow, the last one returned.
    /// `entries` must be sorted.
    pub fn select<'a>(&self, entries: impl Iterator<Item = &'a str>) -> (Vec<&'a str>, Option<&'a str>) {
        let mut after_last = entries.filter(|entry| self.last.as_deref().map_or(true, |last| *entry > last));
        let page: Vec<&str> = after_last.by_ref().take(self.size).collect();
        let more = self.size > 0 && after_last.next().is_some();
        let next = if more { page.last().copied() } else { None };
        (page, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(n: Option<&str>) -> usize {
        Page::parse(n, None).unwrap().size
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        assert_eq!(size(None), DEFAULT_PAGE_SIZE);
        assert_eq!(size(Some("")), DEFAULT_PAGE_SIZE);
        assert_eq!(size(Some("7")), 7);
        assert_eq!(size(Some("007")), 7);
        assert_eq!(size(Some("0")), 0);
        assert_eq!(size(Some(&(MAX_PAGE_SIZE + 1).to_string())), MAX_PAGE_SIZE);
        assert_eq!(size(Some("99999999999999999999999")), MAX_PAGE_SIZE);
    }

    #[test]
    fn page_size_rejects_non_numbers() {
        for n in ["-1", "abc", "1.5", "+1", " 1", "1 ", "١"] {
            assert_eq!(Page::parse(Some(n), None), Err(PageSizeError(n.to_owned())), "{n:?}");
        }
    }

    #[test]
    fn page_size_error_names_the_value() {
        let message = PageSizeError("-1".to_owned()).to_string();
        assert_eq!(message, "n=\"-1\" is not a page size; send a non-negative integer");
    }

    #[test]
    fn empty_last_is_absent() {
        assert_eq!(Page::parse(None, Some("")).unwrap().last, None);
        assert_eq!(Page::parse(None, Some("b")).unwrap().last.as_deref(), Some("b"));
    }

    #[test]
    fn select_pages_after_last() {
        let entries = ["a", "b", "c", "d"];
        let first = Page { size: 2, last: None };
        assert_eq!(first.select(entries.into_iter()), (vec!["a", "b"], Some("b")));
        let second = Page { size: 2, last: Some("b".into()) };
        assert_eq!(second.select(entries.into_iter()), (vec!["c", "d"], None));
        let empty = Page { size: 0, last: None };
        assert_eq!(empty.select(entries.into_iter()), (vec![], None));
    }

    #[test]
    fn select_after_missing_last() {
        let entries = ["a", "c", "e"];
        let page = Page { size: 1, last: Some("b".into()) };
        assert_eq!(page.select(entries.into_iter()), (vec!["c"], Some("c")));
        let past_end = Page { size: 5, last: Some("z".into()) };
        assert_eq!(past_end.select(entries.into_iter()), (vec![], None));
    }
}
