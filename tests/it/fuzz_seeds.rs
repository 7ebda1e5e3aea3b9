//! The fuzzer's corpus (`fuzz/seeds`: inputs that reached new code in the
//! decoder, and the crashes it found) replayed on stable Rust in every
//! test run, with the fuzz target's own checks: decoding never panics,
//! and what decodes encodes and decodes again to the same session.

use std::path::Path;

use ccsync::bundle::Bundle;

#[test]
fn every_fuzz_seed_decodes_without_panic_and_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        // cargo leaves fuzz/ (a package of its own) out of the crate tarball.
        return crate::env::skip_or_fail(&format!(
            "fuzz seeds: no {} (a crate tarball has none)",
            dir.display()
        ));
    };
    let mut seeds: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    seeds.sort();
    assert!(seeds.len() > 100, "{} looks incomplete", dir.display());
    let mut decoded = 0;
    for seed in &seeds {
        let data = std::fs::read(seed).unwrap();
        let Ok(bundle) = Bundle::decode(&data) else {
            continue;
        };
        decoded += 1;
        let name = seed.display();
        let bytes = bundle
            .to_bytes()
            .unwrap_or_else(|e| panic!("{name}: a decoded bundle does not encode: {e}"));
        let again = Bundle::decode(&bytes)
            .unwrap_or_else(|e| panic!("{name}: an encoded bundle does not decode: {e}"));
        assert_eq!(again.transcript, bundle.transcript, "{name}");
        assert_eq!(again.parts, bundle.parts, "{name}");
        assert_eq!(again.meta.session_id, bundle.meta.session_id, "{name}");
        assert_eq!(
            again.meta.relative_cwd.unwrap_or_default(),
            bundle.meta.relative_cwd.unwrap_or_default(),
            "{name}"
        );
    }
    // The golden bundles are among the seeds: some must get through.
    assert!(decoded > 0, "no seed decodes");
}
