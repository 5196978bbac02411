//! Recognising the requests the sendfile front serves itself: plain HTTP/1.1 `GET`s of a blob
//! with no body, no conditional headers and at most a `Range`. Everything else goes to the
//! full HTTP stack unchanged.

use crate::digest::Digest;
use crate::names::RepositoryName;

/// Maximum size of a request head the front reads before handing the connection over.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Maximum number of headers the front parses in one request head.
const MAX_HEADERS: usize = 64;

/// A blob GET the front can serve.
#[derive(Debug, PartialEq, Eq)]
pub struct BlobGet {
    /// Length of the request head in the buffer.
    pub head_len: usize,
    pub path: String,
    pub repository: RepositoryName,
    pub digest: Digest,
    pub range: Option<String>,
    /// The client sent `Connection: close`.
    pub close: bool,
}

/// The classification of the bytes buffered from a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet.
    Incomplete,
    /// Anything the front does not serve itself.
    Other,
    Blob(BlobGet),
}

/// Parses the start of `buffer` as an HTTP/1.1 request head.
pub fn parse(buffer: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD_BYTES => return Parsed::Incomplete,
        _ => return Parsed::Other,
    };
    if request.method != Some("GET") || request.version != Some(1) {
        return Parsed::Other;
    }
    let Some(target) = request.path else { return Parsed::Other };

    let mut range = None;
    let mut close = false;
    for header in request.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        match name.as_str() {
            "range" => match std::str::from_utf8(header.value) {
                Ok(value) if range.is_none() => range = Some(value.to_owned()),
                _ => return Parsed::Other,
            },
            "connection" => {
                let value = String::from_utf8_lossy(header.value).to_ascii_lowercase();
                close = value.split(',').any(|token| token.trim() == "close");
                if value.split(',').any(|token| token.trim() == "upgrade") {
                    return Parsed::Other;
                }
            }
            "content-length" if header.value != b"0" => return Parsed::Other,
            "transfer-encoding" | "expect" | "upgrade" | "if-none-match" | "if-match" | "if-range"
            | "if-modified-since" | "if-unmodified-since" | "authorization" => return Parsed::Other,
            _ => {}
        }
    }

    let path = target.split('?').next().unwrap_or(target);
    let Some(rest) = path.strip_prefix("/v2/") else { return Parsed::Other };
    let Some((name, digest)) = rest.rsplit_once("/blobs/") else { return Parsed::Other };
    let (Ok(repository), Ok(digest)) = (RepositoryName::parse(name), digest.parse::<Digest>()) else {
        return Parsed::Other;
    };
    Parsed::Blob(BlobGet { head_len, path: path.to_owned(), repository, digest, range, close })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::sha256(b"blob")
    }

    #[test]
    fn plain_blob_get_is_served() {
        let head = format!("GET /v2/library/app/blobs/{} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\nGET", digest());
        let Parsed::Blob(get) = parse(head.as_bytes()) else { panic!("not a blob GET") };
        assert_eq!(get.repository.as_str(), "library/app");
        assert_eq!(get.digest, digest());
        assert_eq!(get.range.as_deref(), Some("bytes=0-9"));
        assert_eq!(get.head_len, head.len() - 3);
        assert!(!get.close);
    }

    #[test]
    fn partial_head_waits() {
        let head = format!("GET /v2/a/blobs/{} HTTP/1.1\r\nHost:", digest());
        assert_eq!(parse(head.as_bytes()), Parsed::Incomplete);
    }

    #[test]
    fn other_requests_are_handed_over() {
        let d = digest();
        let cases = [
            format!("HEAD /v2/a/blobs/{d} HTTP/1.1\r\n\r\n"),
            format!("GET /v2/a/blobs/{d} HTTP/1.0\r\n\r\n"),
            format!("GET /v2/a/manifests/{d} HTTP/1.1\r\n\r\n"),
            format!("GET /v2/A/blobs/{d} HTTP/1.1\r\n\r\n"),
            "GET /v2/a/blobs/sha256:short HTTP/1.1\r\n\r\n".to_owned(),
            format!("GET /v2/a/blobs/{d} HTTP/1.1\r\nIf-None-Match: \"{d}\"\r\n\r\n"),
            format!("GET /v2/a/blobs/{d} HTTP/1.1\r\nAuthorization: Basic eA==\r\n\r\n"),
            format!("GET /v2/a/blobs/{d} HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
            format!("GET /v2/a/blobs/{d} HTTP/1.1\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n"),
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_owned(),
            "garbage\r\n\r\n".to_owned(),
        ];
        for head in cases {
            assert_eq!(parse(head.as_bytes()), Parsed::Other, "{head:?}");
        }
    }

    #[test]
    fn oversized_head_is_handed_over() {
        let mut head = format!("GET /v2/a/blobs/{} HTTP/1.1\r\n", digest());
        head.push_str(&"X-Filler: y\r\n".repeat(MAX_HEAD_BYTES / 10));
        assert_eq!(parse(head.as_bytes()), Parsed::Other);
    }

    #[test]
    fn connection_close_is_noted() {
        let head = format!("GET /v2/a/blobs/{} HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", digest());
        let Parsed::Blob(get) = parse(head.as_bytes()) else { panic!("not a blob GET") };
        assert!(get.close);
    }
}
