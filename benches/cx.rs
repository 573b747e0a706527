//! The cost of IICP-CX per task: sealing a request (ephemeral X25519, HKDF,
//! AES-256-GCM) and opening it at the node, for a 1 KiB and a 64 KiB payload;
//! and sealing/opening the answer with the shared secret.
//! Run: `cargo bench --bench cx`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use iicp_client::cx::{self, CxKeyPair};

fn bench(c: &mut Criterion) {
    let node = CxKeyPair::from_secret_bytes([7u8; 32]);
    let public = node.public_bytes();
    let (task, intent) = (
        "7d0f4a2e-3c1b-4f5a-9e8d-2b6c1a0f9e11",
        "urn:iicp:intent:llm:chat:v1",
    );
    let mut g = c.benchmark_group("cx");
    for size in [1024usize, 64 * 1024] {
        let payload = vec![b'x'; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("seal_request", size), &payload, |b, p| {
            b.iter(|| cx::seal_request(&public, task, intent, p))
        });
        let (conf, ss) = cx::seal_request(&public, task, intent, &payload);
        g.bench_with_input(BenchmarkId::new("open_request", size), &conf, |b, conf| {
            b.iter(|| node.open_request(conf, task, intent).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("seal_response", size), &payload, |b, p| {
            b.iter(|| cx::seal_response(&ss, task, p))
        });
        let resp = cx::seal_response(&ss, task, &payload);
        g.bench_with_input(BenchmarkId::new("open_response", size), &resp, |b, r| {
            b.iter(|| cx::open_response(&ss, task, r).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
