//! The mmap strategy: the blob file mapped read-only and handed to the HTTP stack as `Bytes`
//! slices of the mapping, so the bytes go from the page cache to the socket with one copy.

#![allow(unsafe_code)]

use std::fs::File;

use bytes::Bytes;
use memmap2::{Advice, Mmap, MmapOptions};

use crate::storage::{ByteRange, ByteStream};

/// Size of each body chunk sliced from the mapping; large enough that per-chunk overhead is small,
/// small enough that read-ahead advice keeps up.
const CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// Maps `range` of `file` (the whole file when `None`) and streams it in chunks. An empty range or
/// empty file yields an empty stream without mapping anything.
pub fn mmap_stream(file: &File, size: u64, range: Option<ByteRange>) -> std::io::Result<ByteStream> {
    let (start, len) = match range {
        Some(range) => (range.start, range.len()),
        None => (0, size),
    };
    if len == 0 {
        return Ok(Box::pin(futures::stream::empty()));
    }
    let map_len = usize::try_from(len).map_err(|_| std::io::Error::other("range too large to map"))?;

    // SAFETY: containerd never modifies a committed blob file: it writes ingests elsewhere and
    // renames them into place, and its garbage collector only unlinks files. A mapping of an
    // unlinked file stays valid until unmapped, so the mapped bytes cannot change under us.
    let map: Mmap = unsafe { MmapOptions::new().offset(start).len(map_len).map(file)? };
    let _ = map.advise(Advice::Sequential);
    let _ = map.advise(Advice::WillNeed);

    let whole = Bytes::from_owner(map);
    let chunks = (0..len.div_ceil(CHUNK_BYTES)).map(move |i| {
        let begin = (i * CHUNK_BYTES) as usize;
        let end = ((i + 1) * CHUNK_BYTES).min(len) as usize;
        Ok(whole.slice(begin..end))
    });
    Ok(Box::pin(futures::stream::iter(chunks)))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    async fn collect(stream: ByteStream) -> Vec<u8> {
        let chunks: Vec<_> = stream.collect().await;
        chunks.into_iter().flat_map(|chunk| chunk.unwrap().to_vec()).collect()
    }

    #[tokio::test]
    async fn streams_whole_file_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..(CHUNK_BYTES as usize * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let size = data.len() as u64;

        assert_eq!(collect(mmap_stream(&file, size, None).unwrap()).await, data);
        let range = ByteRange { start: 5, end: size - 1 };
        assert_eq!(collect(mmap_stream(&file, size, Some(range)).unwrap()).await, &data[5..]);
        let last = ByteRange { start: size - 1, end: size - 1 };
        assert_eq!(collect(mmap_stream(&file, size, Some(last)).unwrap()).await, &data[data.len() - 1..]);
    }

    #[tokio::test]
    async fn empty_file_yields_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let file = File::open(&path).unwrap();
        assert!(collect(mmap_stream(&file, 0, None).unwrap()).await.is_empty());
    }
}
