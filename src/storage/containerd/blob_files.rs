//! The fast path of blob GETs: committed blob files read from containerd's content directory
//! instead of through gRPC, with a logged, counted fallback when a file cannot be used.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use crate::digest::Digest;
use crate::fastpath::{blob_path, mmap_stream, open_blob, uring_stream};
use crate::logging::WarningLimit;
use crate::metrics::{self, count_served, ReadStrategy};
use crate::storage::{ByteRange, ByteStream};

/// Maximum number of blob sizes kept in the cache; the cache is cleared when it is full. A
/// digest's size never changes, so an entry is never stale, only possibly unused.
const MAX_CACHED_SIZES: usize = 100_000;

/// Minimum time between two fallback warnings; the ones in between are counted and reported
/// with the next warning.
const FALLBACK_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The read strategy of [`BlobFiles::stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileReader {
    Mmap,
    IoUring,
}

/// Reads committed blobs from a content directory this process can read.
pub struct BlobFiles {
    dir: PathBuf,
    reader: FileReader,
    sizes: RwLock<HashMap<String, u64>>,
    fallbacks: AtomicU64,
    warnings: WarningLimit,
}

impl BlobFiles {
    pub fn new(dir: PathBuf, reader: FileReader) -> BlobFiles {
        BlobFiles {
            dir,
            reader,
            sizes: RwLock::new(HashMap::new()),
            fallbacks: AtomicU64::new(0),
            warnings: WarningLimit::new(FALLBACK_WARNING_INTERVAL),
        }
    }

    /// Returns the cached size of a content digest (`sha256:<hex>`).
    pub fn cached_size(&self, content_digest: &str) -> Option<u64> {
        self.sizes.read().ok()?.get(content_digest).copied()
    }

    pub fn remember_size(&self, content_digest: &str, size: u64) {
        let Ok(mut sizes) = self.sizes.write() else { return };
        if sizes.len() >= MAX_CACHED_SIZES {
            sizes.clear();
        }
        sizes.insert(content_digest.to_owned(), size);
    }

    /// Returns the number of reads that fell back to gRPC since start-up.
    pub fn fallback_count(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Opens the committed blob `content_digest` of `size` bytes, or returns `None` after logging
    /// why its file cannot be used, so the caller reads via gRPC.
    pub fn open(&self, content_digest: &str, size: u64) -> Option<File> {
        let digest: Digest = match content_digest.parse() {
            Ok(digest) => digest,
            Err(error) => {
                self.fall_back(content_digest, &error.to_string());
                return None;
            }
        };
        match open_blob(&blob_path(&self.dir, &digest), size) {
            Ok(file) => Some(file),
            Err(error) => {
                self.fall_back(content_digest, &error.to_string());
                None
            }
        }
    }

    /// Streams `range` of the committed blob `content_digest` of `size` bytes from its file, or
    /// returns `None` after logging why not, so the caller reads via gRPC. When the kernel
    /// refuses to create an io_uring, the file is mapped instead.
    pub fn stream(&self, content_digest: &str, size: u64, range: Option<ByteRange>) -> Option<ByteStream> {
        let file = self.open(content_digest, size)?;
        if self.reader == FileReader::IoUring {
            match file.try_clone().and_then(|file| uring_stream(file, size, range)) {
                Ok(stream) => return Some(count_served(stream, ReadStrategy::IoUring)),
                Err(error) => self.fall_back(content_digest, &format!("io_uring unavailable, mapping the file: {error}")),
            }
        }
        match mmap_stream(&file, size, range) {
            Ok(stream) => Some(count_served(stream, ReadStrategy::Mmap)),
            Err(error) => {
                self.fall_back(content_digest, &format!("cannot map the blob file: {error}"));
                None
            }
        }
    }

    fn fall_back(&self, content_digest: &str, reason: &str) {
        let total = self.fallbacks.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::global().add_fast_path_fallback();
        let Some(suppressed) = self.warnings.check() else { return };
        tracing::warn!(
            digest = content_digest,
            reason,
            fallbacks_total = total,
            suppressed_warnings = suppressed,
            "blob file unusable, reading through containerd's gRPC API"
        );
    }
}
