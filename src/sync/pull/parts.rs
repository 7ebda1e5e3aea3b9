//! A session's side files: which would be written, and writing them.

use std::path::Path;

use super::PartsOutcome;
use super::install::{Installer, file_len};
use crate::claude::transcript;
use crate::names::SessionId;
use crate::sync::plan::{self, PartAction};
use crate::sync::{Received, SessionError};

impl Installer<'_> {
    /// Whether any side file of `copies` would be written for session `id`.
    pub(super) fn parts_pending<'c>(
        &self,
        copies: impl IntoIterator<Item = &'c Received>,
        dir: &Path,
        id: &SessionId,
    ) -> Result<bool, SessionError> {
        for part in copies.into_iter().flat_map(|c| &c.parts) {
            let dest = self.claude.part_file(dir, id, &part.path);
            if decide_part(&dest, part, false)?.0 == PartAction::Write {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Installs the side files of `copy` for session `id`, whose transcript
    /// is in `dir`, each atomically.
    pub(super) fn install_parts(
        &self,
        copy: &Received,
        dir: &Path,
        id: &SessionId,
        supersedes: bool,
        out: &mut PartsOutcome,
    ) -> Result<(), SessionError> {
        for part in &copy.parts {
            let dest = self.claude.part_file(dir, id, &part.path);
            let seen = out.files.contains(&dest);
            let (action, local_len) =
                decide_part(&dest, part, supersedes && !part.path.appended())?;
            match action {
                PartAction::Write if self.dry_run => out.written += 1,
                PartAction::Write => {
                    let write_err = |source| SessionError::Write {
                        path: dest.clone(),
                        source,
                    };
                    // A subagent transcript the client appends to is
                    // extended in place, like the session's own.
                    match local_len {
                        Some(len) if part.path.appended() && len < part.len => {
                            crate::sync::append::append_rest(
                                self.journal.as_ref(),
                                &part.file,
                                &dest,
                                len,
                            )
                            .map_err(write_err)?;
                        }
                        _ => {
                            crate::sync::place_unsynced(&part.file, &dest).map_err(write_err)?;
                            self.written(&dest);
                        }
                    }
                    self.keep_time(&dest, copy.meta.parts_modified_ms.get(&part.path).copied())?;
                    out.written += 1;
                }
                PartAction::Same => {}
                // What an earlier copy wrote in this pull is not news.
                kept if !seen => out.kept.push((dest.clone(), kept)),
                _ => {}
            }
            if !seen {
                out.files.push(dest);
            }
        }
        Ok(())
    }
}

/// What to do with side file `part`, given what is at `dest`, and the
/// length of what is there.
fn decide_part(
    dest: &Path,
    part: &crate::sync::ReceivedPart,
    supersedes: bool,
) -> Result<(PartAction, Option<u64>), SessionError> {
    let local = file_len(dest)?;
    let mut failure = None;
    let action = plan::decide_part(
        local,
        part.len,
        |n| {
            transcript::same_prefix(dest, &part.file, n).unwrap_or_else(|e| {
                failure = Some(e);
                false
            })
        },
        supersedes,
    );
    match failure {
        Some(source) => Err(SessionError::Read {
            path: dest.to_path_buf(),
            source,
        }),
        None => Ok((action, local)),
    }
}
