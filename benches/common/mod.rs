//! What the benches share.

use ccsync::bundle::{self, Meta};
use ccsync::names::{MachineName, RelPath, SessionId};
use ccsync::project::ProjectKey;

/// The header of the bundle every bench writes.
pub fn meta() -> Meta {
    Meta {
        version: bundle::CURRENT_VERSION,
        session_id: SessionId::parse("5c0375b4-57a5-4f26-b12d-d022ee4e51b7").unwrap(),
        project_key: ProjectKey::parse("git:github.com/acme/widget").unwrap(),
        original_cwd: "/home/a/widget".into(),
        relative_cwd: Some(RelPath::default()),
        machine: MachineName::parse("laptop").unwrap(),
        exported_at_ms: 0,
        modified_ms: Some(1_763_628_000_123),
        parts_modified_ms: Default::default(),
        segment: None,
    }
}
