//! Digest verification cost on push: hashing throughput per algorithm over body-sized chunks.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use containerd_registry::digest::Algorithm;

fn hash_chunks(c: &mut Criterion) {
    let data = vec![0x5au8; 16 * 1024 * 1024];
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(20);

    for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
        group.bench_with_input(BenchmarkId::new(algorithm.name(), "16MiB"), &data, |b, data| {
            b.iter(|| {
                let mut hasher = algorithm.hasher();
                for chunk in data.chunks(1024 * 1024) {
                    hasher.update(chunk);
                }
                hasher.finish()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hash_chunks);
criterion_main!(benches);
