//! Write streams kept open between the PATCH requests of an upload.
//!
//! containerd 1.6 rehashes every byte already in an ingest when a new write stream opens on
//! it, so opening one stream per chunk makes a chunked upload quadratic in its size. Keeping
//! the stream open lets each chunk continue where the previous one ended. A stream holds
//! containerd's lock on its ingest, so idle streams are closed after [`IDLE_LIMIT`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::content::IngestWriter;
use crate::mapping::UploadId;

/// Time after which an unused write stream is closed; the next chunk then opens a new one.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// Maximum number of write streams kept open; beyond it the oldest is closed.
const MAX_OPEN_WRITERS: usize = 1024;

#[derive(Default)]
pub struct OpenWriters {
    writers: Mutex<HashMap<UploadId, (IngestWriter, Instant)>>,
}

impl OpenWriters {
    /// Takes the open write stream of an upload, if there is one and it is not idle too long.
    pub fn take(&self, id: &UploadId) -> Option<IngestWriter> {
        let mut writers = self.writers.lock().ok()?;
        let (writer, last_used) = writers.remove(id)?;
        (last_used.elapsed() < IDLE_LIMIT).then_some(writer)
    }

    /// Keeps a write stream for the upload's next chunk, closing streams idle for too long.
    pub fn put(&self, id: UploadId, writer: IngestWriter) {
        let Ok(mut writers) = self.writers.lock() else { return };
        writers.retain(|_, (_, last_used)| last_used.elapsed() < IDLE_LIMIT);
        if writers.len() >= MAX_OPEN_WRITERS {
            let oldest = writers.iter().min_by_key(|(_, (_, last_used))| *last_used).map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                writers.remove(&oldest);
            }
        }
        writers.insert(id, (writer, Instant::now()));
    }

    /// Removes the write stream of an upload, idle or not, so that the caller can close it before
    /// aborting the ingest or committing it through a new stream.
    pub fn remove(&self, id: &UploadId) -> Option<IngestWriter> {
        let mut writers = self.writers.lock().ok()?;
        writers.remove(id).map(|(writer, _)| writer)
    }
}
