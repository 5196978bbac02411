//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, with `n` and `last` pagination.
//!
//! A page contains the entries after `last` in lexical order, at most `n` of them, and
//! [`crate::pagination`] parses both parameters and picks the entries. When entries remain after
//! the page, a `Link: <...?n=N&last=X>; rel="next"` header points at the next page. `n=0` returns
//! an empty page without `Link`, since following that link could never advance.

use axum::extract::State;
use axum::http::header::LINK;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{json_response, ApiError, AppState, QueryParams};
use crate::error::ClientError;
use crate::names::RepositoryName;
use crate::pagination::Page;

/// Reads the `n` and `last` query parameters of a listing.
fn page_from_uri(uri: &Uri) -> Result<Page, ApiError> {
    let query = QueryParams::from_uri(uri);
    Page::parse(query.get("n"), query.get("last"))
        .map_err(|error| ClientError::PaginationInvalid(error.to_string()).into())
}

/// Returns the `Link` header that points at the page after `last` of the listing at `path`.
fn next_link(page: &Page, path: &str, last: &str) -> Option<HeaderValue> {
    // Tags and repository names need no percent-encoding in a query.
    HeaderValue::from_str(&format!("<{path}?n={}&last={last}>; rel=\"next\"", page.size)).ok()
}

/// Builds the 200 response of a listing, with a `Link` header when `next` is set.
fn page_response(page: &Page, path: &str, body: serde_json::Value, next: Option<&str>) -> Response {
    let mut response = json_response(StatusCode::OK, &body);
    if let Some(link) = next.and_then(|last| next_link(page, path, last)) {
        response.headers_mut().insert(LINK, link);
    }
    response
}

/// `GET /v2/<name>/tags/list`: `{"name": ..., "tags": [...]}`.
pub(super) async fn list(state: &AppState, repository: &RepositoryName, uri: &Uri) -> Result<Response, ApiError> {
    let page = page_from_uri(uri)?;
    let tags = state.storage.list_tags(repository).await?;

    let (entries, next) = page.select(tags.iter().map(|tag| tag.as_str()));
    let body = json!({ "name": repository.as_str(), "tags": entries });
    Ok(page_response(&page, &format!("/v2/{repository}/tags/list"), body, next))
}

/// `GET /v2/_catalog`: `{"repositories": [...]}`.
pub(super) async fn catalog(State(state): State<AppState>, uri: Uri) -> Response {
    tracing::Span::current().record("route", "catalog");
    let result = async {
        let page = page_from_uri(&uri)?;
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
    use crate::limits::MAX_PAGE_SIZE;

    fn page(query: &str) -> Result<Page, ApiError> {
        page_from_uri(&format!("/v2/_catalog?{query}").parse().unwrap())
    }

    #[test]
    fn page_from_query_decodes_n_and_last() {
        let parsed = page("n=7&last=a%2Fb").unwrap();
        assert_eq!(parsed, Page { size: 7, last: Some("a/b".into()) });
        assert_eq!(page("n=99999999999999999999999").unwrap().size, MAX_PAGE_SIZE);
    }

    #[test]
    fn page_size_rejects_non_numbers() {
        for query in ["n=-1", "n=abc", "n=1.5", "n=%2B1"] {
            let error = page(query).err().expect(query);
            assert_eq!(error.code(), crate::error::ErrorCode::PaginationNumberInvalid, "{query}");
        }
    }
}
