//! `GET /v2/<name>/referrers/<digest>?artifactType=`: the manifests whose `subject` is `<digest>`,
//! as an OCI image index. An unknown subject has no referrers, so it is an empty index, not 404.
//! The whole list fits one response, so no `Link` header is sent.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::Response;
use serde_json::json;

use super::{json_response, ApiError, AppState, QueryParams, OCI_FILTERS_APPLIED};
use crate::digest::Digest;
use crate::manifest::OCI_INDEX;
use crate::names::RepositoryName;

pub(super) async fn list(state: &AppState, repository: &RepositoryName, digest: &str, uri: &Uri) -> Result<Response, ApiError> {
    let digest: Digest = digest.parse()?;
    let query = QueryParams::from_uri(uri);
    let artifact_type = query.get("artifactType").filter(|value| !value.is_empty());

    let mut descriptors = state.storage.list_referrers(repository, &digest).await?;
    if let Some(artifact_type) = artifact_type {
        descriptors.retain(|descriptor| descriptor.artifact_type.as_deref() == Some(artifact_type));
    }

    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors });
    let mut response = json_response(StatusCode::OK, &index);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    if artifact_type.is_some() {
        response.headers_mut().insert(OCI_FILTERS_APPLIED, HeaderValue::from_static("artifactType"));
    }
    Ok(response)
}
