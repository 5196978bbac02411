//! Names, body streams and result checks shared by the tests that call `Storage` directly.

use bytes::Bytes;
use futures::StreamExt;

use containerd_registry::digest::Digest;
use containerd_registry::error::{ClientError, Error};
use containerd_registry::names::{RepositoryName, Tag};
use containerd_registry::storage::ByteStream;

pub fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

pub fn tag(name: &str) -> Tag {
    Tag::parse(name).unwrap()
}

/// Returns a body stream that delivers `bytes` in pieces of `piece` bytes.
pub fn body_in_pieces(bytes: &[u8], piece: usize) -> ByteStream {
    let pieces: Vec<std::io::Result<Bytes>> =
        bytes.chunks(piece.max(1)).map(|chunk| Ok(Bytes::copy_from_slice(chunk))).collect();
    Box::pin(futures::stream::iter(pieces))
}

pub fn body(bytes: &[u8]) -> ByteStream {
    body_in_pieces(bytes, 64 * 1024)
}

pub fn empty_body() -> ByteStream {
    Box::pin(futures::stream::empty())
}

/// Deterministic bytes in which every position differs between seeds.
pub fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed).collect()
}

pub async fn collect(stream: ByteStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut stream = stream;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("read a chunk of the blob"));
    }
    bytes
}

#[track_caller]
pub fn client_error<T: std::fmt::Debug>(result: Result<T, Error>) -> ClientError {
    match result {
        Err(Error::Client(error)) => error,
        other => panic!("expected a client error, got {other:?}"),
    }
}

pub fn blob_unknown(repository: &str, digest: &Digest) -> ClientError {
    ClientError::BlobUnknown { repository: repository.to_owned(), digest: digest.clone() }
}
