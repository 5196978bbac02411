//! The sendfile strategy: the kernel copies blob bytes from the page cache to a plain TCP socket,
//! with no copy through user space. It needs the raw socket, so it serves HTTP/1.1 without TLS.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Maximum bytes per `sendfile` call; Linux transfers at most about 2 GiB per call anyway.
const MAX_SENDFILE_BYTES: usize = 1 << 30;

/// Sends `len` bytes of `file` from `offset` to `stream`, waiting for the socket to become
/// writable between calls. Fails with `UnexpectedEof` if the file is shorter than expected.
pub async fn send_file(stream: &TcpStream, file: &File, offset: u64, len: u64) -> io::Result<()> {
    let mut position = i64::try_from(offset).map_err(|_| io::Error::other("offset exceeds i64"))?;
    let mut remaining = len;

    while remaining > 0 {
        stream.writable().await?;
        let count = remaining.min(MAX_SENDFILE_BYTES as u64) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile64(stream.as_fd(), file.as_fd(), Some(&mut position), count)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob file ended early")),
            Ok(sent) => remaining -= sent as u64,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn sends_ranges_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..3 * 1024 * 1024 + 5).map(|i| (i % 249) as u8).collect();
        std::fs::write(&path, &data).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (offset, len) in [(0u64, data.len() as u64), (7, 1000), (data.len() as u64 - 1, 1)] {
            let client = tokio::spawn(async move {
                let mut socket = TcpStream::connect(addr).await.unwrap();
                let mut received = Vec::new();
                socket.read_to_end(&mut received).await.unwrap();
                received
            });
            let (server, _) = listener.accept().await.unwrap();
            let file = File::open(&path).unwrap();
            send_file(&server, &file, offset, len).await.unwrap();
            drop(server);
            let received = client.await.unwrap();
            assert!(received == data[offset as usize..(offset + len) as usize], "offset {offset} len {len}");
        }
    }

    #[tokio::test]
    async fn short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        std::fs::write(&path, b"abc").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (server, _) = listener.accept().await.unwrap();
        let error = send_file(&server, &File::open(&path).unwrap(), 0, 10).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        drop(client);
    }
}
