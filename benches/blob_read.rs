//! Read strategies over the same blob file in the page cache: the mmap and io_uring streams, the
//! sendfile loop into a loopback socket that a reader thread drains, and plain `read` calls into a
//! reused buffer, which is what any copy-based strategy pays at least.

use std::io::Read;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;

use containerd_registry::fastpath::{mmap_stream, open_blob, send_file, uring_stream};
use containerd_registry::storage::ByteRange;

const BLOB_BYTES: usize = 64 * 1024 * 1024;

fn read_strategies(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let data: Vec<u8> = (0..BLOB_BYTES).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let size = BLOB_BYTES as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    let mut group = c.benchmark_group("blob_read");
    group.throughput(Throughput::Bytes(size));
    group.sample_size(20);

    // Touching one byte per page makes the mapping cost (page faults) count, as a socket copy would.
    group.bench_function("mmap", |b| {
        b.iter(|| {
            let file = open_blob(&path, size).unwrap();
            runtime.block_on(async {
                let mut stream = mmap_stream(&file, size, None).unwrap();
                let mut sum = 0u64;
                while let Some(chunk) = stream.next().await {
                    sum += chunk.unwrap().iter().step_by(4096).map(|&b| b as u64).sum::<u64>();
                }
                sum
            })
        })
    });

    group.bench_function("mmap_range_half", |b| {
        let range = ByteRange { start: size / 4, end: size / 4 * 3 - 1 };
        b.iter(|| {
            let file = open_blob(&path, size).unwrap();
            runtime.block_on(async {
                let mut stream = mmap_stream(&file, size, Some(range)).unwrap();
                let mut sum = 0u64;
                while let Some(chunk) = stream.next().await {
                    sum += chunk.unwrap().iter().step_by(4096).map(|&b| b as u64).sum::<u64>();
                }
                sum
            })
        })
    });

    group.bench_function("io_uring", |b| {
        b.iter(|| {
            let file = open_blob(&path, size).unwrap();
            runtime.block_on(async {
                let mut stream = uring_stream(file, size, None).unwrap();
                let mut sum = 0u64;
                while let Some(chunk) = stream.next().await {
                    sum += chunk.unwrap().iter().step_by(4096).map(|&b| b as u64).sum::<u64>();
                }
                sum
            })
        })
    });

    // The reader thread discards what it receives, as a client's kernel would acknowledge it.
    let sender = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(address).unwrap();
        std::thread::spawn(move || std::io::copy(&mut client, &mut std::io::sink()));
        let (server, _) = listener.accept().await.unwrap();
        server
    });
    group.bench_function("sendfile_loopback", |b| {
        b.iter(|| {
            let file = open_blob(&path, size).unwrap();
            runtime.block_on(send_file(&sender, &file, 0, size)).unwrap();
        })
    });

    group.bench_function("read_1MiB_buffer", |b| {
        let mut buffer = vec![0u8; 1024 * 1024];
        b.iter(|| {
            let mut file = open_blob(&path, size).unwrap();
            let mut sum = 0u64;
            loop {
                let n = file.read(&mut buffer).unwrap();
                if n == 0 {
                    break;
                }
                sum += buffer[..n].iter().step_by(4096).map(|&b| b as u64).sum::<u64>();
            }
            sum
        })
    });
    group.finish();
}

criterion_group!(benches, read_strategies);
criterion_main!(benches);
