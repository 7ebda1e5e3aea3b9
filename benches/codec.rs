//! The bundle codec on a transcript of real shape: JSON lines full of
//! escaped quotes, non-ASCII text and long lines.

mod common;

use std::hint::black_box;

use ccsync::bundle;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn transcript(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 4096);
    let mut i = 0;
    while out.len() < bytes {
        let text = "lorem \\\"quoted\\\" ipsum\\n\\tü 日本 ".repeat(1 + i % 120);
        out.extend_from_slice(
            format!(
                "{{\"parentUuid\":null,\"type\":\"user\",\"uuid\":\"{i:08x}-0000-4000-8000-000000000000\",\"cwd\":\"/w\",\"message\":{{\"role\":\"user\",\"content\":\"{text}\"}}}}\n"
            )
            .as_bytes(),
        );
        i += 1;
    }
    out
}

fn codec(c: &mut Criterion) {
    let t = transcript(8 << 20);
    let meta = common::meta();
    let mut encoded = Vec::new();
    bundle::write(&meta, &mut t.as_slice(), t.len() as u64, &[], &mut encoded).unwrap();

    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(t.len() as u64));
    group.sample_size(20);
    group.bench_function("encode 8 MiB", |b| {
        let mut out = Vec::with_capacity(encoded.len());
        b.iter(|| {
            out.clear();
            bundle::write(&meta, &mut t.as_slice(), t.len() as u64, &[], &mut out).unwrap();
            black_box(out.len())
        })
    });
    group.bench_function("decode 8 MiB", |b| {
        let mut out = Vec::with_capacity(t.len());
        b.iter(|| {
            out.clear();
            black_box(bundle::read(encoded.as_slice(), &mut out, &mut Vec::new()).unwrap());
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
