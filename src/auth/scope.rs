//! The access a request needs, in the resource and action terms of Docker's token scopes
//! (`repository:<name>:pull`), as Docker Distribution derives them from the method and path.

use axum::http::Method;

/// `type` of a repository resource in scopes and in the token's `access` claim.
pub const REPOSITORY: &str = "repository";
/// `type` of the catalog resource (`registry:catalog:*`).
pub const REGISTRY: &str = "registry";

/// One action on one resource: `repository:library/app:pull` is type `repository`, name
/// `library/app`, action `pull`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub resource_type: &'static str,
    pub name: String,
    pub action: &'static str,
}

impl Access {
    pub fn pull(repository: &str) -> Access {
        Access { resource_type: REPOSITORY, name: repository.to_owned(), action: "pull" }
    }

    fn push(repository: &str) -> Access {
        Access { resource_type: REPOSITORY, name: repository.to_owned(), action: "push" }
    }

    fn delete(repository: &str) -> Access {
        Access { resource_type: REPOSITORY, name: repository.to_owned(), action: "delete" }
    }

    fn catalog() -> Access {
        Access { resource_type: REGISTRY, name: "catalog".to_owned(), action: "*" }
    }
}

/// Returns the access a request of `method` on `path` needs. As in Docker Distribution, reads
/// need `pull`, `POST`, `PATCH` and `PUT` need `pull` and `push`, `DELETE` needs `delete`, and
/// the catalog needs `registry:catalog:*`. `/v2/` and paths that name no repository need only
/// valid credentials.
pub fn required_access(method: &Method, path: &str) -> Vec<Access> {
    let Some(rest) = path.strip_prefix("/v2/") else { return Vec::new() };
    if rest == "_catalog" {
        return vec![Access::catalog()];
    }
    let Some(repository) = crate::http::repository_of(rest) else { return Vec::new() };

    match *method {
        Method::GET | Method::HEAD => vec![Access::pull(repository)],
        Method::POST | Method::PUT | Method::PATCH => vec![Access::pull(repository), Access::push(repository)],
        Method::DELETE => vec![Access::delete(repository)],
        _ => Vec::new(),
    }
}

/// Returns the `from` repository of a cross-repository mount (`POST
/// /v2/<name>/blobs/uploads/?mount=<digest>&from=<repository>`), which needs `pull` on `from`.
pub fn mount_source(method: &Method, path: &str, query: Option<&str>) -> Option<String> {
    if *method != Method::POST || !(path.ends_with("/blobs/uploads/") || path.ends_with("/blobs/uploads")) {
        return None;
    }
    let pairs = query_pairs(query?);
    let has_mount = pairs.iter().any(|(key, _)| key == "mount");
    let from = pairs.into_iter().find(|(key, _)| key == "from").map(|(_, value)| value)?;
    has_mount.then_some(from)
}

/// Returns `query` without its `mount` and `from` parameters, which turns a mount into a plain
/// upload.
pub fn without_mount(query: &str) -> String {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            key != "mount" && key != "from"
        })
        .collect();
    kept.join("&")
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    let uri = format!("/?{query}");
    let parsed = uri.parse().ok().and_then(|uri| axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).ok());
    parsed.map(|axum::extract::Query(pairs)| pairs).unwrap_or_default()
}

/// Formats `access` as the `scope` of a challenge: `type:name:action,action`, one entry per
/// resource in the order first required, entries separated by spaces.
pub fn scope_param(access: &[Access]) -> String {
    let mut entries: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for item in access {
        match entries.iter_mut().find(|(kind, name, _)| *kind == item.resource_type && *name == item.name) {
            Some((_, _, actions)) if !actions.contains(&item.action) => actions.push(item.action),
            Some(_) => {}
            None => entries.push((item.resource_type, &item.name, vec![item.action])),
        }
    }
    let scopes: Vec<String> =
        entries.iter().map(|(kind, name, actions)| format!("{kind}:{name}:{}", actions.join(","))).collect();
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(method: Method, path: &str) -> String {
        scope_param(&required_access(&method, path))
    }

    #[test]
    fn reads_need_pull() {
        assert_eq!(scopes(Method::GET, "/v2/foo/bar/manifests/latest"), "repository:foo/bar:pull");
        assert_eq!(scopes(Method::HEAD, "/v2/foo/blobs/sha256:abc"), "repository:foo:pull");
        assert_eq!(scopes(Method::GET, "/v2/a/tags/list"), "repository:a:pull");
        assert_eq!(scopes(Method::GET, "/v2/a/referrers/sha256:abc"), "repository:a:pull");
        assert_eq!(scopes(Method::GET, "/v2/a/blobs/uploads/some-id"), "repository:a:pull");
    }

    #[test]
    fn writes_need_pull_and_push() {
        assert_eq!(scopes(Method::POST, "/v2/foo/bar/blobs/uploads/"), "repository:foo/bar:pull,push");
        assert_eq!(scopes(Method::PATCH, "/v2/foo/blobs/uploads/x"), "repository:foo:pull,push");
        assert_eq!(scopes(Method::PUT, "/v2/foo/manifests/v1"), "repository:foo:pull,push");
    }

    #[test]
    fn delete_needs_delete() {
        assert_eq!(scopes(Method::DELETE, "/v2/foo/manifests/v1"), "repository:foo:delete");
        assert_eq!(scopes(Method::DELETE, "/v2/foo/blobs/uploads/x"), "repository:foo:delete");
    }

    #[test]
    fn catalog_needs_registry_scope() {
        assert_eq!(scopes(Method::GET, "/v2/_catalog"), "registry:catalog:*");
    }

    #[test]
    fn base_and_unknown_paths_need_only_credentials() {
        for path in ["/v2/", "/v2", "/v2/nothing", "/other", "/v2/a/b/c"] {
            assert_eq!(required_access(&Method::GET, path), Vec::new(), "{path}");
        }
    }

    #[test]
    fn scope_param_groups_resources() {
        let access = [Access::pull("a"), Access::push("a"), Access::pull("b"), Access::pull("a")];
        assert_eq!(scope_param(&access), "repository:a:pull,push repository:b:pull");
        assert_eq!(scope_param(&[]), "");
    }

    #[test]
    fn mount_source_needs_mount_and_from() {
        let post = Method::POST;
        let path = "/v2/a/blobs/uploads/";
        assert_eq!(mount_source(&post, path, Some("mount=sha256:x&from=b%2Fc")), Some("b/c".to_owned()));
        assert_eq!(mount_source(&post, path, Some("from=b")), None);
        assert_eq!(mount_source(&post, path, Some("mount=sha256:x")), None);
        assert_eq!(mount_source(&post, path, None), None);
        assert_eq!(mount_source(&Method::GET, path, Some("mount=sha256:x&from=b")), None);
        assert_eq!(mount_source(&post, "/v2/a/manifests/x", Some("mount=sha256:x&from=b")), None);
    }

    #[test]
    fn without_mount_keeps_other_parameters() {
        assert_eq!(without_mount("mount=sha256:x&from=b"), "");
        assert_eq!(without_mount("mount=sha256:x&digest=sha256:y&from=b"), "digest=sha256:y");
    }
}
