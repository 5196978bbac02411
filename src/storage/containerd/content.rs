//! Calls to containerd's content service: content info and labels, reads, ingests and writes.

use std::collections::HashMap;

use bytes::Bytes;
use containerd_client::services::v1::{
    AbortRequest, Info, InfoRequest, ListContentRequest, ReadContentRequest, StatusRequest, UpdateRequest, WriteAction,
    WriteContentRequest, WriteContentResponse,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;

use super::client::{optional, unary, CallResult, Client, Failure};
use crate::error::{Error, Result};
use crate::storage::ByteStream;

/// Number of write requests queued for the gRPC stream before the sender waits.
const WRITE_QUEUE_LEN: usize = 2;

/// Converts a size or offset that containerd reports as `int64`.
pub fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::Internal(format!("containerd reported a negative {what}: {value}")))
}

/// Converts a size or offset to containerd's `int64`.
pub fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::Internal(format!("{what} {value} exceeds containerd's int64 range")))
}

impl Client {
    /// Returns the info of content in this namespace, or `None` when it is not there.
    pub async fn content_info(&self, digest: &str) -> Result<Option<Info>> {
        let request = self.request(InfoRequest { digest: digest.to_owned() });
        let response = optional(unary("content.Info", self.content().info(request).await))?;
        Ok(response.and_then(|response| response.info))
    }

    /// Sets the given labels on content, keeping its other labels. `None` when the content is
    /// not in this namespace.
    pub async fn set_content_labels(&self, digest: &str, labels: HashMap<String, String>) -> Result<Option<()>> {
        let paths = labels.keys().map(|key| format!("labels.{key}")).collect();
        let info = Info { digest: digest.to_owned(), labels, ..Info::default() };
        let request =
            self.request(UpdateRequest { info: Some(info), update_mask: Some(prost_types::FieldMask { paths }) });
        Ok(optional(unary("content.Update", self.content().update(request).await))?.map(|_| ()))
    }

    /// Lists the content of this namespace that matches `filter`, selectors joined by commas
    /// that must all match. containerd matches any one of several filter strings, so every
    /// list call here sends one.
    pub async fn list_content(&self, filter: String) -> Result<Vec<Info>> {
        let request = self.request(ListContentRequest { filters: vec![filter] });
        let mut responses = unary("content.List", self.content().list(request).await)?;

        let mut infos = Vec::new();
        while let Some(response) = responses.message().await.map_err(|s| Failure::new("content.List", s))? {
            infos.extend(response.info);
        }
        Ok(infos)
    }

    /// Streams `size` bytes of content from `offset`, or to the end when `size` is 0, in one
    /// gRPC stream. `None` when the content is not in this namespace.
    pub async fn read_content(&self, digest: &str, offset: u64, size: u64) -> Result<Option<ByteStream>> {
        let request = self.request(ReadContentRequest {
            digest: digest.to_owned(),
            offset: to_i64(offset, "read offset")?,
            size: to_i64(size, "read size")?,
        });
        let Some(responses) = optional(unary("content.Read", self.content().read(request).await))? else {
            return Ok(None);
        };

        // containerd numbers the messages from the start of the read, not of the content.
        let digest = digest.to_owned();
        let mut next_offset: i64 = 0;
        let bytes = responses.map(move |item| {
            let message =
                item.map_err(|status| std::io::Error::other(Failure::new("content.Read", status).into_error()))?;
            if message.offset != next_offset {
                return Err(std::io::Error::other(format!(
                    "containerd sent bytes of {digest} at read offset {}, expected read offset {next_offset}",
                    message.offset
                )));
            }
            next_offset += message.data.len() as i64;
            Ok(Bytes::from(message.data))
        });
        Ok(Some(Box::pin(bytes)))
    }

    /// Returns the number of bytes an ingest holds, or `None` when it does not exist.
    pub async fn ingest_offset(&self, reference: &str) -> Result<Option<u64>> {
        let request = self.request(StatusRequest { r#ref: reference.to_owned() });
        let response = optional(unary("content.Status", self.content().status(request).await))?;
        match response.and_then(|response| response.status) {
            Some(status) => Ok(Some(to_u64(status.offset, "ingest offset")?)),
            None => Ok(None),
        }
    }

    /// Discards an ingest and its bytes; an ingest that does not exist is not an error.
    pub async fn abort_ingest(&self, reference: &str) -> Result<()> {
        let request = self.request(AbortRequest { r#ref: reference.to_owned() });
        optional(unary("content.Abort", self.content().abort(request).await))?;
        Ok(())
    }

    /// Opens a write stream on an ingest, creating the ingest in `lease` if it does not exist.
    /// containerd locks the ingest for the stream's lifetime, so the offset it reports stays
    /// true until the writer is closed or dropped.
    pub async fn open_ingest(&self, reference: &str, lease: &str) -> CallResult<IngestWriter> {
        let (sender, receiver) = mpsc::channel(WRITE_QUEUE_LEN);
        let stat = WriteContentRequest {
            action: WriteAction::Stat as i32,
            r#ref: reference.to_owned(),
            ..WriteContentRequest::default()
        };
        if sender.try_send(stat).is_err() {
            return Err(Failure::Other(Error::Internal("write queue rejected the first request".to_owned())));
        }

        let request = self.leased_request(ReceiverStream::new(receiver), lease).map_err(Failure::Other)?;
        let responses = unary("content.Write", self.content().write(request).await)?;
        let mut writer = IngestWriter { requests: Some(sender), responses, offset: 0 };
        let stat = writer.next_response().await?;
        writer.offset = to_u64(stat.offset, "ingest offset").map_err(Failure::Other)?;
        Ok(writer)
    }
}

/// An open `content.Write` stream on one ingest. Writes are pipelined: each request carries
/// the offset it expects, and containerd rejects one that does not match with `OutOfRange`.
/// Dropping the writer without [`IngestWriter::close`] or [`IngestWriter::commit`] resets the
/// stream, and the bytes containerd already received stay in the ingest.
pub struct IngestWriter {
    /// `None` once the request side is closed.
    requests: Option<mpsc::Sender<WriteContentRequest>>,
    responses: Streaming<WriteContentResponse>,
    offset: u64,
}

impl IngestWriter {
    /// Returns the number of bytes in the ingest, counting the writes sent so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Appends `data` at the current offset.
    pub async fn write(&mut self, data: Vec<u8>) -> CallResult<()> {
        let length = data.len() as u64;
        let request = WriteContentRequest {
            action: WriteAction::Write as i32,
            offset: self.wire_offset()?,
            data,
            ..WriteContentRequest::default()
        };
        self.send(request).await?;
        self.offset += length;
        Ok(())
    }

    /// Returns the digest containerd computed over every byte of the ingest, in its canonical
    /// algorithm (sha256 for containerd 1.6).
    pub async fn digest(&mut self) -> CallResult<String> {
        Ok(self.stat().await?.digest)
    }

    /// Waits until containerd has processed every write sent so far and returns the ingest's
    /// offset as containerd reports it.
    pub async fn sync(&mut self) -> CallResult<u64> {
        let stat = self.stat().await?;
        let offset = to_u64(stat.offset, "ingest offset").map_err(Failure::Other)?;
        self.offset = offset;
        Ok(offset)
    }

    async fn stat(&mut self) -> CallResult<WriteContentResponse> {
        let request = WriteContentRequest { action: WriteAction::Stat as i32, ..WriteContentRequest::default() };
        self.send(request).await?;
        loop {
            let response = self.next_response().await?;
            if response.action == WriteAction::Stat as i32 {
                return Ok(response);
            }
        }
    }

    /// Commits the ingest as content of digest `expected`, which containerd verifies along with
    /// the size. `AlreadyExists` means the content was already in the namespace and the ingest
    /// is gone; `FailedPrecondition` means the bytes do not match `expected`.
    pub async fn commit(mut self, expected: &str, labels: HashMap<String, String>) -> CallResult<()> {
        let request = WriteContentRequest {
            action: WriteAction::Commit as i32,
            offset: self.wire_offset()?,
            total: self.wire_offset()?,
            expected: expected.to_owned(),
            labels,
            ..WriteContentRequest::default()
        };
        self.send(request).await?;
        self.requests = None;
        self.finish().await.map(|_| ())
    }

    /// Closes the request side, keeps the ingest for later writes, and returns the offset
    /// containerd reports.
    pub async fn close(mut self) -> CallResult<u64> {
        self.requests = None;
        let last = self.finish().await?;
        match last {
            Some(response) => to_u64(response.offset, "ingest offset").map_err(Failure::Other),
            None => Ok(self.offset),
        }
    }

    fn wire_offset(&self) -> CallResult<i64> {
        to_i64(self.offset, "ingest offset").map_err(Failure::Other)
    }

    /// Queues a request, reading responses while the queue is full so that a failed stream
    /// reports its status instead of blocking the sender.
    async fn send(&mut self, request: WriteContentRequest) -> CallResult<()> {
        // A clone, because the field is cleared below while the permit borrows the sender.
        let Some(requests) = self.requests.clone() else {
            return Err(Failure::Other(Error::Internal("write stream is already closed".to_owned())));
        };
        let permit = loop {
            tokio::select! {
                biased;
                permit = requests.reserve() => break permit.ok(),
                response = self.responses.message() => {
                    if check_response(response)?.is_none() {
                        break None;
                    }
                }
            }
        };
        if let Some(permit) = permit {
            permit.send(request);
            return Ok(());
        }

        // The call has ended, and its status gives the reason.
        self.requests = None;
        self.finish().await?;
        Err(ended_early())
    }

    async fn next_response(&mut self) -> CallResult<WriteContentResponse> {
        match check_response(self.responses.message().await)? {
            Some(response) => Ok(response),
            None => Err(ended_early()),
        }
    }

    /// Reads the responses to the end of the call and returns the last one.
    async fn finish(&mut self) -> CallResult<Option<WriteContentResponse>> {
        let mut last = None;
        while let Some(response) = check_response(self.responses.message().await)? {
            last = Some(response);
        }
        Ok(last)
    }
}

fn ended_early() -> Failure {
    Failure::Other(Error::Internal("containerd ended the write stream before the registry closed it".to_owned()))
}

fn check_response(
    response: std::result::Result<Option<WriteContentResponse>, tonic::Status>,
) -> CallResult<Option<WriteContentResponse>> {
    response.map_err(|status| Failure::new("content.Write", status))
}
