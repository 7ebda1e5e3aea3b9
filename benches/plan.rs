//! The pull plan: how it scales with copies and transcript size.

use std::hint::black_box;

use ccsync::sync::plan;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn plan_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    for size in [1usize << 10, 1 << 20] {
        let base: Vec<u8> = b"{\"type\":\"user\"}\n"
            .iter()
            .copied()
            .cycle()
            .take(size)
            .collect();
        let local = base.clone();
        let mut ahead = base.clone();
        ahead.extend_from_slice(b"{\"more\":1}\n");
        let mut diverged = base.clone();
        diverged.extend_from_slice(b"{\"other\":1}\n");
        let copies: Vec<&[u8]> = vec![&ahead, &base, &diverged, &base[..size / 2]];
        group.bench_with_input(BenchmarkId::new("4 copies", size), &size, |b, _| {
            b.iter(|| black_box(plan::decide(Some(&local), &copies)))
        });
    }
    group.finish();
}

criterion_group!(benches, plan_bench);
criterion_main!(benches);
