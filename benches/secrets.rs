//! The credential scan against the push it guards, over the same 64 MiB of
//! transcript-like JSON lines (prose, code, paths, tool calls, base64 images
//! and signatures): the scan's share of a push is the ratio of the scan's
//! time to `bundle::write`'s. The budget is 10%.

mod common;

use std::hint::black_box;
use std::time::Duration;

use ccsync::bundle;
use ccsync::secrets::Scanner;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A small deterministic generator, so every run scans the same bytes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn base64(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..len).map(|_| ALPHABET[self.below(64)] as char).collect()
    }
}

const PROSE: &[&str] = &[
    "Let me look at the task-manager module first, then fix the risk-scoring test.",
    "The build fails because `ask-for-confirmation` is not a valid flag; I'll use --yes.",
    "Ich habe die Datei geändert: die Länge wird jetzt geprüft. 日本語のテキストも。",
    "I'll run the test suite again with `cargo test -- --nocapture` to see the output.",
    "The \\\"disk-usage\\\" helper reads /proc/mounts; on macOS it shells out to df -k.",
    "Summary:\\n- moved parsing into parse.rs\\n- added 3 tests\\n- no behaviour change",
];

const CODE: &[&str] = &[
    "fn main() {\\n    let args: Vec<String> = std::env::args().collect();\\n    println!(\\\"{:?}\\\", args);\\n}\\n",
    "import os\\nfrom huggingface_hub import hf_hub_download\\n\\ndef load(path):\\n    with open(path) as f:\\n        return f.read()\\n",
    "const config = { apiBase: \\\"https://api.example.com/v1\\\", retries: 3, timeoutMs: 5000 };\\nexport default config;\\n",
    "#!/bin/sh\\nset -eu\\nnpm_config_cache=/tmp/npm npm ci\\nexec node dist/index.js \\\"$@\\\"\\n",
    "    1→use std::io::{self, Read};\\n    2→\\n    3→pub struct Skeleton { task_id: u64 }\\n",
];

const PATHS: &[&str] = &[
    "/home/marco/projects/task-manager/src/main.rs",
    "/Users/ana/code/spotter/web/src/components/Map.tsx",
    "/home/marco/.claude/projects/-home-marco-projects-spotter/notes.md",
    "C:\\\\Users\\\\jo\\\\repo\\\\README.md",
];

fn uuid(g: &mut Lcg) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        g.next() as u32,
        g.next() & 0xffff,
        g.next() & 0xfff,
        g.next() & 0xfff,
        g.next() & 0xffff_ffff_ffff
    )
}

fn transcript(bytes: usize) -> Vec<u8> {
    let mut g = Lcg(0x5eed);
    let mut out = String::with_capacity(bytes + (256 << 10));
    while out.len() < bytes {
        let head = format!(
            "{{\"parentUuid\":\"{}\",\"isSidechain\":false,\"cwd\":\"/home/marco/projects/spotter\",\"sessionId\":\"5c0375b4-57a5-4f26-b12d-d022ee4e51b7\",\"version\":\"2.1.38\",\"gitBranch\":\"master\",\"uuid\":\"{}\",\"timestamp\":\"2026-02-10T21:11:52.438Z\"",
            uuid(&mut g),
            uuid(&mut g)
        );
        out.push_str(&head);
        match g.below(20) {
            0 => {
                // A pasted screenshot: one long base64 run.
                let len = 40_000 + g.below(160_000);
                let image = g.base64(len);
                out.push_str(&format!(
                    ",\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":[{{\"type\":\"image\",\"source\":{{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"{image}\"}}}}]}}}}\n"
                ));
            }
            1..=4 => {
                let len = 400 + g.below(800);
                let signature = g.base64(len);
                let text = PROSE[g.below(PROSE.len())].repeat(1 + g.below(8));
                out.push_str(&format!(
                    ",\"type\":\"assistant\",\"message\":{{\"role\":\"assistant\",\"content\":[{{\"type\":\"thinking\",\"thinking\":\"{text}\",\"signature\":\"{signature}\"}}]}}}}\n"
                ));
            }
            5..=9 => {
                let path = PATHS[g.below(PATHS.len())];
                out.push_str(&format!(
                    ",\"type\":\"assistant\",\"message\":{{\"role\":\"assistant\",\"content\":[{{\"type\":\"tool_use\",\"id\":\"toolu_01{}\",\"name\":\"Read\",\"input\":{{\"file_path\":\"{path}\"}}}}]}}}}\n",
                    g.next()
                ));
            }
            10..=15 => {
                let mut code = String::new();
                for _ in 0..1 + g.below(40) {
                    code.push_str(CODE[g.below(CODE.len())]);
                }
                out.push_str(&format!(
                    ",\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":[{{\"tool_use_id\":\"toolu_01{}\",\"type\":\"tool_result\",\"content\":\"{code}\"}}]}}}}\n",
                    g.next()
                ));
            }
            _ => {
                let text = PROSE[g.below(PROSE.len())].repeat(1 + g.below(20));
                out.push_str(&format!(
                    ",\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":\"{text}\"}}}}\n"
                ));
            }
        }
    }
    out.into_bytes()
}

fn secrets(c: &mut Criterion) {
    let t = transcript(64 << 20);
    let scanner = Scanner::global();
    assert!(
        scanner.scan_bytes(&t).is_clean(),
        "the generated transcript holds no credential"
    );
    let meta = common::meta();

    let mut group = c.benchmark_group("secrets");
    group.throughput(Throughput::Bytes(t.len() as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("scan_reader 64 MiB", |b| {
        b.iter(|| black_box(scanner.scan_reader(t.as_slice(), t.len() as u64).unwrap()))
    });
    // As a caller that reads the transcript anyway would scan it: the
    // 64 KiB pieces `bundle::write` encodes, scanned where they lie.
    group.bench_function("Scan::feed 64 KiB pieces, 64 MiB", |b| {
        b.iter(|| {
            let mut scan = scanner.scan();
            for piece in t.chunks(64 << 10) {
                scan.feed(piece);
            }
            black_box(scan.finish())
        })
    });
    group.bench_function("bundle::write 64 MiB", |b| {
        let mut out = Vec::with_capacity(t.len() + (t.len() >> 3));
        b.iter(|| {
            out.clear();
            bundle::write(&meta, &mut t.as_slice(), t.len() as u64, &[], &mut out).unwrap();
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, secrets);
criterion_main!(benches);
