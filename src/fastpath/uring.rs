//! The io_uring strategy: the blob file is read through an io_uring with several reads in
//! flight, on a blocking thread, and the filled buffers are streamed to the HTTP stack. It
//! costs one more copy than mmap (file to buffer), but never faults on mapped pages.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use bytes::Bytes;
use io_uring::{opcode, types, IoUring};
use tokio::sync::mpsc;

use crate::storage::{ByteRange, ByteStream};

/// Bytes per read; each read in flight owns one buffer of this size.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Reads kept in flight per response, which bounds its buffers to `DEPTH * CHUNK_BYTES`.
const DEPTH: usize = 4;

/// One chunk of the response: its place in the file and the buffer the kernel fills.
struct Slot {
    offset: u64,
    buffer: Vec<u8>,
    filled: usize,
}

/// Streams `range` of `file` (the whole file when `None`) read through an io_uring. Fails at
/// once when the kernel refuses to create a ring, so the caller can use another strategy.
pub fn uring_stream(file: File, size: u64, range: Option<ByteRange>) -> io::Result<ByteStream> {
    let (start, len) = match range {
        Some(range) => (range.start, range.len()),
        None => (0, size),
    };
    if len == 0 {
        return Ok(Box::pin(futures::stream::empty()));
    }

    let ring = IoUring::new(DEPTH as u32)?;
    let (sender, receiver) = mpsc::channel(DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut reader = Reader { ring, file, next: start, end: start + len, slots: VecDeque::new(), first_id: 0, in_flight: 0 };
        if let Err(error) = reader.run(&sender) {
            let _ = sender.blocking_send(Err(error));
        }
        reader.drain();
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver)))
}

struct Reader {
    ring: IoUring,
    file: File,
    /// Offset of the next chunk to start reading.
    next: u64,
    end: u64,
    /// Chunks in file order; the one at index `i` has id `first_id + i`.
    slots: VecDeque<Slot>,
    first_id: u64,
    in_flight: usize,
}

impl Reader {
    fn run(&mut self, sender: &mpsc::Sender<io::Result<Bytes>>) -> io::Result<()> {
        loop {
            while self.slots.len() < DEPTH && self.next < self.end {
                let len = (self.end - self.next).min(CHUNK_BYTES as u64) as usize;
                self.slots.push_back(Slot { offset: self.next, buffer: vec![0; len], filled: 0 });
                self.next += len as u64;
                self.submit(self.slots.len() - 1)?;
            }
            if self.slots.is_empty() {
                return Ok(());
            }

            self.ring.submit_and_wait(1)?;
            self.complete()?;

            while self.slots.front().is_some_and(|slot| slot.filled == slot.buffer.len()) {
                let slot = self.slots.pop_front().expect("front exists");
                self.first_id += 1;
                if sender.blocking_send(Ok(Bytes::from(slot.buffer))).is_err() {
                    // The client went away; stop reading.
                    return Ok(());
                }
            }
        }
    }

    /// Queues a read of the unfilled part of slot `index`.
    fn submit(&mut self, index: usize) -> io::Result<()> {
        let slot = &mut self.slots[index];
        let remaining = &mut slot.buffer[slot.filled..];
        let entry = opcode::Read::new(types::Fd(self.file.as_raw_fd()), remaining.as_mut_ptr(), remaining.len() as u32)
            .offset(slot.offset + slot.filled as u64)
            .build()
            .user_data(self.first_id + index as u64);

        // SAFETY: the kernel writes into `remaining` until the read completes. The buffer is a
        // heap allocation owned by the slot, and moving the slot within `slots` does not move
        // it. Nothing reads or frees the buffer before its completion is reaped, because `run`
        // pops only filled slots and `drain` reaps every read in flight before the slots are
        // dropped. The file descriptor belongs to `self.file`, which outlives the ring's use.
        unsafe { self.ring.submission().push(&entry) }.map_err(|_| io::Error::other("io_uring submission queue is full"))?;
        self.in_flight += 1;
        Ok(())
    }

    /// Reaps completions, resubmitting short reads.
    fn complete(&mut self) -> io::Result<()> {
        let completions: Vec<(u64, i32)> = self.ring.completion().map(|cqe| (cqe.user_data(), cqe.result())).collect();
        // Every reaped read is finished with its buffer, whether or not an earlier one failed.
        self.in_flight -= completions.len();
        for (id, result) in completions {
            let index = (id - self.first_id) as usize;
            if result < 0 {
                return Err(io::Error::from_raw_os_error(-result));
            }
            if result == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob file ended early"));
            }
            let slot = &mut self.slots[index];
            slot.filled += result as usize;
            if slot.filled < slot.buffer.len() {
                self.submit(index)?;
            }
        }
        Ok(())
    }

    /// Waits for every read still in flight, so no buffer is freed while the kernel writes it.
    fn drain(&mut self) {
        while self.in_flight > 0 {
            if self.ring.submit_and_wait(1).is_err() {
                // NOTE: a ring that cannot wait any more leaks its buffers rather than freeing
                // memory the kernel may still write.
                std::mem::forget(std::mem::take(&mut self.slots));
                return;
            }
            let reaped = self.ring.completion().count();
            self.in_flight -= reaped;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    async fn collect(stream: ByteStream) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        Ok(bytes)
    }

    #[tokio::test]
    async fn reads_whole_file_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..(CHUNK_BYTES * DEPTH * 2 + 123)).map(|i| (i % 247) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let size = data.len() as u64;

        let whole = collect(uring_stream(File::open(&path).unwrap(), size, None).unwrap()).await.unwrap();
        assert!(whole == data);
        let range = ByteRange { start: 3, end: size - 2 };
        let part = collect(uring_stream(File::open(&path).unwrap(), size, Some(range)).unwrap()).await.unwrap();
        assert!(part == data[3..data.len() - 1]);
    }

    #[tokio::test]
    async fn short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        std::fs::write(&path, b"abc").unwrap();
        let error = collect(uring_stream(File::open(&path).unwrap(), 10, None).unwrap()).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn dropped_stream_stops_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, vec![7u8; CHUNK_BYTES * 16]).unwrap();
        let mut stream = uring_stream(File::open(&path).unwrap(), (CHUNK_BYTES * 16) as u64, None).unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap().len(), CHUNK_BYTES);
        drop(stream);
    }
}
