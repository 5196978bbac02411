//! `Range` and `Content-Range` header parsing.
