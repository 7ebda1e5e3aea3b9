//! Any bytes given to the bundle decoder: it must never panic, and what it
//! accepts must encode and decode again to the same session.
#![no_main]

use ccsync::bundle::Bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = Bundle::decode(data) {
        let bytes = bundle.to_bytes().expect("a decoded bundle encodes");
        let again = Bundle::decode(&bytes).expect("an encoded bundle decodes");
        assert_eq!(again.transcript, bundle.transcript);
        assert_eq!(again.parts, bundle.parts);
        assert_eq!(again.meta.session_id, bundle.meta.session_id);
        assert_eq!(
            again.meta.relative_cwd.unwrap_or_default(),
            bundle.meta.relative_cwd.unwrap_or_default()
        );
    }
});
