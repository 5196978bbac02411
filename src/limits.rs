//! Limits on every size a client controls. Each is checked before the bytes it bounds are
//! buffered, and a request over a limit is rejected with the matching OCI error code.

/// Maximum length in bytes of a repository name, as Docker Distribution enforces.
pub const MAX_REPOSITORY_NAME_LEN: usize = 255;

/// Maximum length of a tag; the OCI Distribution Spec grammar allows 128 characters.
pub const MAX_TAG_LEN: usize = 128;

/// Maximum size of a manifest or index body. The whole body is buffered to verify and parse it,
/// so this bounds the memory one manifest PUT can take. Docker Distribution uses 4 MiB too.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Maximum number of entries returned by one page of `_catalog` or tags list; a larger `n` is
/// clamped to this value.
pub const MAX_PAGE_SIZE: usize = 10_000;

/// Number of entries in a page when the client does not send `n`.
pub const DEFAULT_PAGE_SIZE: usize = 1_000;

/// Maximum number of descriptors (layers, index children) in one manifest. Each becomes a
/// containerd label, and all labels of an object are stored and sent together.
pub const MAX_MANIFEST_REFERENCES: usize = 10_000;

/// Size of the messages the request body is cut into when it is streamed to containerd's
/// `content.Write`; below containerd's 16 MiB receive limit.
pub const WRITE_CHUNK_BYTES: usize = 1024 * 1024;

/// containerd's maximum combined size in bytes of one label's key and value, which containerd's
/// `labels.Validate` enforces. The registry's labels hold a root of at most
/// [`crate::mapping::MAX_ROOT_LEN`] bytes, a repository name, an upload id, digests or a supported
/// manifest media type, so the limits above keep every label below it. Manifest storage checks
/// each label against it again before writing.
pub const CONTAINERD_MAX_LABEL_LEN: usize = 4096;

/// Maximum number of referrers returned for one subject, which bounds the response body.
pub const MAX_REFERRERS: usize = 10_000;

/// The largest `Content-Length` a request may declare: blob sizes are signed 64-bit numbers in
/// OCI descriptors and in containerd.
pub const MAX_CONTENT_LENGTH: u64 = i64::MAX as u64;
