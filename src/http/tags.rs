//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, with `n` and `last` pagination.
//!
//! A page contains the entries after `last` in lexical order, at most `n` of them. A missing or
//! empty `n` means [`DEFAULT_PAGE_SIZE`], and a larger `n` than [`MAX_PAGE_SIZE`] is clamped to
//! it. When entries remain after the page, a `Link: <...?n=N&last=X>; rel="next"` header points
//! at the next page. `n=0` returns an empty page without `Link`, since following that link could
//! never advance.

use axum::extract::State;
use axum::http::header::LINK;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{json_response, ApiError, AppState, QueryParams};
use crate::error::ClientError;
use crate::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::names::RepositoryName;

/// The `n` and `last` query parameters of a listing.
struct Page {
    size: usize,
    last: Option<String>,
}

impl Page {
    fn from_uri(uri: &Uri) -> Result<Page, ApiError> {
        let query = QueryParams::from_uri(uri);

        let size = match query.get("n").filter(|n| !n.is_empty()) {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                // All digits: only a number too large for `usize` fails to parse, and it is clamped.
                n.parse::<usize>().unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)
            }
            Some(n) => {
                let message = format!("n={n:?} is not a page size; send a non-negative integer");
                return Err(ClientError::PaginationInvalid(message).into());
            }
        };
        let last = query.get("last").filter(|last| !last.is_empty()).map(str::to_owned);
        Ok(Page { size, last })
    }

    /// Returns the entries of this page and, when more entries follow, the last one returned.
    /// `entries` must be sorted.
    fn select<'a>(&self, entries: impl Iterator<Item = &'a str>) -> (Vec<&'a str>, Option<&'a str>) {
        let mut after_last = entries.filter(|entry| self.last.as_deref().map_or(true, |last| *entry > last));
        let page: Vec<&str> = after_last.by_ref().take(self.size).collect();
        let more = self.size > 0 && after_last.next().is_some();
        let next = if more { page.last().copied() } else { None };
        (page, next)
    }

    /// Returns the `Link` header that points at the page after `last` of the listing at `path`.
    fn link(&self, path: &str, last: &str) -> Option<HeaderValue> {
        // Tags and repository names need no percent-encoding in a query.
        HeaderValue::from_str(&format!("<{path}?n={}&last={last}>; rel=\"next\"", self.size)).ok()
    }
}

/// Builds the 200 response of a listing, with a `Link` header when `next` is set.
fn page_response(page: &Page, path: &str, body: serde_json::Value, next: Option<&str>) -> Response {
    let mut response = json_response(StatusCode::OK, &body);
    if let Some(link) = next.and_then(|last| page.link(path, last)) {
        response.headers_mut().insert(LINK, link);
    }
    response
}

/// `GET /v2/<name>/tags/list`: `{"name": ..., "tags": [...]}`.
pub(super) async fn list(state: &AppState, repository: &RepositoryName, uri: &Uri) -> Result<Response, ApiError> {
    let page = Page::from_uri(uri)?;
    let tags = state.storage.list_tags(repository).await?;

    let (entries, next) = page.select(tags.iter().map(|tag| tag.as_str()));
    let body = json!({ "name": repository.as_str(), "tags": entries });
    Ok(page_response(&page, &format!("/v2/{repository}/tags/list"), body, next))
}

/// `GET /v2/_catalog`: `{"repositories": [...]}`.
pub(super) async fn catalog(State(state): State<AppState>, uri: Uri) -> Response {
    tracing::Span::current().record("route", "catalog");
    let result = async {
        let page = Page::from_uri(&uri)?;
        let repositories = state.storage.list_repositories().await?;

        let (entries, next) = page.select(repositories.iter().map(RepositoryName::as_str));
        let body = json!({ "repositories": entries });
        Ok::<_, ApiError>(page_response(&page, "/v2/_catalog", body, next))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(query: &str) -> Result<Page, ApiError> {
        Page::from_uri(&format!("/v2/_catalog?{query}").parse().unwrap())
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        assert_eq!(page("").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(page("n=").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(page("n=7").unwrap().size, 7);
        assert_eq!(page(&format!("n={}", MAX_PAGE_SIZE + 1)).unwrap().size, MAX_PAGE_SIZE);
        assert_eq!(page("n=99999999999999999999999").unwrap().size, MAX_PAGE_SIZE);
    }

    #[test]
    fn page_size_rejects_non_numbers() {
        for query in ["n=-1", "n=abc", "n=1.5", "n=%2B1"] {
            let error = page(query).err().expect(query);
            assert_eq!(error.code(), crate::error::ErrorCode::PaginationNumberInvalid, "{query}");
        }
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
}
