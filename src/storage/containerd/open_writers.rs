//! Write streams kept open between the PATCH requests of an upload, and the claim that lets
//! one request at a time write to an upload.
//!
//! containerd 1.6 rehashes every byte already in an ingest when a new write stream opens on
//! it, so opening one stream per chunk makes a chunked upload quadratic in its size. Keeping
//! the stream open lets each chunk continue where the previous one ended. A stream holds
//! containerd's lock on its ingest, so idle streams are closed after [`IDLE_LIMIT`].
//!
//! A request that writes to, commits or cancels an upload first claims it. A second request
//! for the same upload while the first runs is refused at once with [`UploadBusy`], instead of
//! failing later on containerd's ingest lock with an error that looks like an outage.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::content::IngestWriter;
use crate::mapping::UploadId;

/// Time after which an unused write stream is closed; the next chunk then opens a new one.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// Maximum number of idle write streams kept open; beyond it the oldest is closed.
const MAX_OPEN_WRITERS: usize = 1024;

/// The state of one upload that has a request running or a write stream kept.
enum Slot {
    /// A request has the upload's [`Claim`].
    Claimed,
    /// No request runs; the stream the last chunk used waits for the next one.
    Idle(IngestWriter, Instant),
}

/// Another request is writing to, committing or cancelling the upload.
#[derive(Debug)]
pub struct UploadBusy;

#[derive(Default)]
pub struct OpenWriters {
    slots: Mutex<HashMap<UploadId, Slot>>,
}

/// The right of one request to use an upload's ingest. Dropping it ends the claim and closes
/// the stream unless [`Claim::keep`] handed one back.
pub struct Claim<'a> {
    writers: &'a OpenWriters,
    id: UploadId,
    /// The stream the previous chunk left, taken by [`Claim::take_writer`].
    previous: Option<IngestWriter>,
    /// [`Claim::keep`] ended the claim by keeping a stream.
    ended: bool,
}

impl OpenWriters {
    fn slots(&self) -> MutexGuard<'_, HashMap<UploadId, Slot>> {
        // A panic while the lock was held leaves a usable map: each slot is inserted or removed
        // whole.
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims an upload for one request, with the stream the previous chunk left open if it
    /// has not been idle too long.
    pub fn claim(&self, id: &UploadId) -> Result<Claim<'_>, UploadBusy> {
        let mut slots = self.slots();
        let previous = match slots.insert(id.clone(), Slot::Claimed) {
            Some(Slot::Claimed) => return Err(UploadBusy),
            Some(Slot::Idle(writer, last_used)) => (last_used.elapsed() < IDLE_LIMIT).then_some(writer),
            None => None,
        };
        Ok(Claim { writers: self, id: id.clone(), previous, ended: false })
    }

    /// Keeps a write stream for the upload's next chunk, closing streams idle for too long.
    fn keep(&self, id: &UploadId, writer: IngestWriter) {
        let mut slots = self.slots();
        slots.retain(|_, slot| match slot {
            Slot::Claimed => true,
            Slot::Idle(_, last_used) => last_used.elapsed() < IDLE_LIMIT,
        });
        let idle = slots.values().filter(|slot| matches!(slot, Slot::Idle(..))).count();
        if idle >= MAX_OPEN_WRITERS {
            let oldest = slots
                .iter()
                .filter_map(|(id, slot)| match slot {
                    Slot::Idle(_, last_used) => Some((id, *last_used)),
                    Slot::Claimed => None,
                })
                .min_by_key(|(_, last_used)| *last_used)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                slots.remove(&oldest);
            }
        }
        slots.insert(id.clone(), Slot::Idle(writer, Instant::now()));
    }

    /// Ends a claim that left no stream to keep.
    fn release(&self, id: &UploadId) {
        let mut slots = self.slots();
        if matches!(slots.get(id), Some(Slot::Claimed)) {
            slots.remove(id);
        }
    }
}

impl Claim<'_> {
    /// Takes the stream the previous chunk left open, if there was one.
    pub fn take_writer(&mut self) -> Option<IngestWriter> {
        self.previous.take()
    }

    /// Ends the claim, keeping `writer` open for the upload's next request.
    pub fn keep(mut self, writer: IngestWriter) {
        self.writers.keep(&self.id, writer);
        // The kept stream replaced the claimed slot, which dropping the claim must not remove.
        self.ended = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.writers.release(&self.id);
        }
    }
}
