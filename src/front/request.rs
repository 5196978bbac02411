//! Recognising the requests the sendfile front serves itself: plain HTTP/1.1 `GET`s of a blob
//! with no body, no conditional headers and at most one `Range` and one `Authorization`.
//! Everything else goes to the full HTTP stack unchanged.

use crate::digest::Digest;
use axum::http::Method;

use crate::limits::MAX_CONTENT_LENGTH;
use crate::metrics::request_id;
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
    /// The `Authorization` header, which the front checks when auth is configured.
    pub authorization: Option<String>,
    /// The client sent `Connection: close`.
    pub close: bool,
    /// The request's `X-Request-Id`, or a new one when it sent none or an invalid one.
    pub request_id: String,
}

/// The classification of the bytes buffered from a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet.
    Incomplete,
    /// Anything the front does not serve itself.
    Other,
    Blob(BlobGet),
    /// A request whose `Content-Length` is not one byte count the registry can accept. Its body
    /// cannot be delimited, so the front rejects it and closes the connection.
    BadLength(RejectedLength),
}

/// The reason a request's `Content-Length` was rejected, as a message that names the value.
#[derive(Debug, PartialEq, Eq)]
pub struct LengthError(pub String);

/// A request rejected for its `Content-Length`, with what its log line and metrics need.
#[derive(Debug, PartialEq, Eq)]
pub struct RejectedLength {
    pub error: LengthError,
    pub method: Method,
    pub path: String,
    pub request_id: String,
}

/// Checks every `Content-Length` header of a request: each must be a decimal byte count no
/// larger than [`MAX_CONTENT_LENGTH`], and repeated headers must agree.
fn check_content_length(headers: &[httparse::Header<'_>]) -> Result<(), LengthError> {
    let mut seen: Option<u64> = None;
    for header in headers.iter().filter(|header| header.name.eq_ignore_ascii_case("content-length")) {
        let text = String::from_utf8_lossy(header.value);
        let text = text.trim();
        let digits = !text.is_empty() && text.len() <= 20 && text.bytes().all(|byte| byte.is_ascii_digit());
        let value = digits.then(|| text.parse::<u64>().ok()).flatten();
        let value = match value {
            Some(value) if value <= MAX_CONTENT_LENGTH => value,
            Some(_) => {
                return Err(LengthError(format!(
                    "Content-Length {text} exceeds the largest blob size, {MAX_CONTENT_LENGTH} bytes"
                )))
            }
            None => return Err(LengthError(format!("Content-Length {text:?} is not a byte count"))),
        };
        if seen.is_some_and(|first| first != value) {
            return Err(LengthError(format!(
                "the request has two Content-Length headers, {} and {value}",
                seen.unwrap_or_default()
            )));
        }
        seen = Some(value);
    }
    Ok(())
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
    if let Err(error) = check_content_length(request.headers) {
        let incoming_id = request.headers.iter().find(|header| header.name.eq_ignore_ascii_case("x-request-id"));
        let target = request.path.unwrap_or_default();
        return Parsed::BadLength(RejectedLength {
            error,
            method: request.method.and_then(|method| Method::from_bytes(method.as_bytes()).ok()).unwrap_or_default(),
            path: target.split('?').next().unwrap_or(target).to_owned(),
            request_id: request_id(incoming_id.map(|header| header.value)),
        });
    }
    if request.method != Some("GET") || request.version != Some(1) {
        return Parsed::Other;
    }
    let Some(target) = request.path else { return Parsed::Other };

    let mut range = None;
    let mut authorization = None;
    let mut close = false;
    let mut incoming_id = None;
    for header in request.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        match name.as_str() {
            "range" => match std::str::from_utf8(header.value) {
                Ok(value) if range.is_none() => range = Some(value.to_owned()),
                _ => return Parsed::Other,
            },
            "authorization" => match std::str::from_utf8(header.value) {
                Ok(value) if authorization.is_none() => authorization = Some(value.to_owned()),
                _ => return Parsed::Other,
            },
            "connection" => {
                let value = String::from_utf8_lossy(header.value).to_ascii_lowercase();
                close = value.split(',').any(|token| token.trim() == "close");
                if value.split(',').any(|token| token.trim() == "upgrade") {
                    return Parsed::Other;
                }
            }
            "x-request-id" if incoming_id.is_none() => incoming_id = Some(header.value),
            "content-length" if header.value != b"0" => return Parsed::Other,
            "transfer-encoding" | "expect" | "upgrade" | "if-none-match" | "if-match" | "if-range"
            | "if-modified-since" | "if-unmodified-since" => return Parsed::Other,
            _ => {}
        }
    }

    let path = target.split('?').next().unwrap_or(target);
    let Some(rest) = path.strip_prefix("/v2/") else { return Parsed::Other };
    let Some((name, digest)) = rest.rsplit_once("/blobs/") else { return Parsed::Other };
    let (Ok(repository), Ok(digest)) = (RepositoryName::parse(name), digest.parse::<Digest>()) else {
        return Parsed::Other;
    };
    let request_id = request_id(incoming_id);
    Parsed::Blob(BlobGet { head_len, path: path.to_owned(), repository, digest, range, authorization, close, request_id })
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
            format!("GET /v2/a/blobs/{d} HTTP/1.1\r\nAuthorization: Basic eA==\r\nAuthorization: Basic eQ==\r\n\r\n"),
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
    fn bad_content_length_rejected() {
        let cases = [
            ("-1", "\"-1\" is not a byte count"),
            ("+5", "\"+5\" is not a byte count"),
            ("0x10", "\"0x10\" is not a byte count"),
            ("", "\"\" is not a byte count"),
            ("18446744073709551616", "\"18446744073709551616\" is not a byte count"),
            ("18446744073709551615", "18446744073709551615 exceeds the largest blob size"),
            ("9223372036854775808", "9223372036854775808 exceeds the largest blob size"),
        ];
        for method in ["GET", "PATCH", "PUT", "POST"] {
            for (value, message) in cases {
                let head = format!("{method} /v2/a/blobs/uploads/x HTTP/1.1\r\nContent-Length: {value}\r\n\r\n");
                match parse(head.as_bytes()) {
                    Parsed::BadLength(rejected) => {
                        let LengthError(text) = &rejected.error;
                        assert!(text.contains(message), "{value}: {text}");
                        assert_eq!(rejected.method.as_str(), method);
                        assert_eq!(rejected.path, "/v2/a/blobs/uploads/x");
                    }
                    other => panic!("{method} with Content-Length {value:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn repeated_content_lengths_must_agree() {
        let head = "PUT /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert!(matches!(parse(head.as_bytes()), Parsed::BadLength(_)));
        let head = "PUT /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n";
        assert_eq!(parse(head.as_bytes()), Parsed::Other);
        let head = format!("PUT /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: {MAX_CONTENT_LENGTH}\r\n\r\n");
        assert_eq!(parse(head.as_bytes()), Parsed::Other);
    }

    #[test]
    fn oversized_head_is_handed_over() {
        let mut head = format!("GET /v2/a/blobs/{} HTTP/1.1\r\n", digest());
        head.push_str(&"X-Filler: y\r\n".repeat(MAX_HEAD_BYTES / 10));
        assert_eq!(parse(head.as_bytes()), Parsed::Other);
    }

    #[test]
    fn authorization_is_kept() {
        let head = format!("GET /v2/a/blobs/{} HTTP/1.1\r\nAuthorization: Bearer t.o.k\r\n\r\n", digest());
        let Parsed::Blob(get) = parse(head.as_bytes()) else { panic!("not a blob GET") };
        assert_eq!(get.authorization.as_deref(), Some("Bearer t.o.k"));
    }

    #[test]
    fn connection_close_is_noted() {
        let head = format!("GET /v2/a/blobs/{} HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", digest());
        let Parsed::Blob(get) = parse(head.as_bytes()) else { panic!("not a blob GET") };
        assert!(get.close);
    }

    #[test]
    fn request_id_is_taken_or_generated() {
        let head = format!("GET /v2/a/blobs/{} HTTP/1.1\r\nX-Request-Id: client-1\r\n\r\n", digest());
        let Parsed::Blob(get) = parse(head.as_bytes()) else { panic!("not a blob GET") };
        assert_eq!(get.request_id, "client-1");

        let head = format!("GET /v2/a/blobs/{} HTTP/1.1\r\nX-Request-Id: not valid\r\n\r\n", digest());
        let Parsed::Blob(get) = parse(head.as_bytes()) else { panic!("not a blob GET") };
        assert_ne!(get.request_id, "not valid");
        assert_eq!(get.request_id.len(), 36, "{:?} is not a UUID", get.request_id);
    }
}
