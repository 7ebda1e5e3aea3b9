//! What a pull or an import says beside its report: clocks far off, times
//! raised for the client's cleanup, prompts added to the prompt history.

use ccsync::sync::plan::Action;
use ccsync::sync::pull::{self, PullReport};

use super::Env;
use crate::ui;

/// A modification time in the future did not stop the pull; say so, since
/// a clock this far off confuses more than ccsync.
pub fn warn_skewed(env: &Env, skewed: Vec<(std::path::PathBuf, std::time::Duration)>) {
    for (path, ahead) in skewed {
        env.ui.warn(format_args!(
            "{} is modified in the future (clock skew?): {} ahead of this machine's clock; not taken as a sign that Claude Code is writing it",
            path.display(),
            humantime::format_duration(std::time::Duration::from_secs(ahead.as_secs()))
        ));
    }
}

/// `recall = true`: the prompts of the sessions this pull wrote go to the
/// client's prompt recall, as typed in this machine's directories.
pub fn recall_prompts(env: &Env, installer: &pull::Installer, report: &PullReport) {
    use ccsync::claude::history;
    let mut entries = Vec::new();
    for o in &report.outcomes {
        let written = std::iter::once((&o.id, &o.transcript, o.action))
            .chain(o.forks.iter().map(|f| (&f.id, &f.transcript, f.action)));
        for (id, transcript, _) in written.filter(|(.., a)| *a != Action::Keep) {
            match history::entries_of(transcript, &o.cwd.to_string_lossy(), id.as_str()) {
                Ok(found) => entries.extend(found),
                Err(e) => env
                    .ui
                    .warn(format_args!("prompts of {id} not recalled: {e}")),
            }
        }
    }
    match history::recall(installer.claude.root(), &entries) {
        Ok(0) => {}
        Ok(n) => env.ui.status(format_args!(
            "added {} to the prompt history (recall = true)",
            ui::plural(n, "prompt", "prompts")
        )),
        Err(e) => env.ui.warn(format_args!(
            "prompts not added to {}: {e}",
            installer.claude.root().join("history.jsonl").display()
        )),
    }
}

/// Files that kept a later time than their source's, so that the client's
/// cleanup does not delete them at its next start.
pub fn note_clamped(env: &Env, installer: &pull::Installer) {
    let (clamped, oldest) = installer.take_clamped();
    if let Some(first) = clamped.first() {
        env.ui.status(format_args!(
            "{} older on the source than this machine's cleanupPeriodDays allows ({}{}) got the time {} instead, so Claude Code does not delete {}",
            crate::ui::plural(clamped.len(), "file", "files"),
            first.display(),
            if clamped.len() > 1 { ", …" } else { "" },
            crate::ui::time(oldest),
            if clamped.len() > 1 { "them" } else { "it" },
        ));
    }
}
