//! `ccsync import FILE [--cwd DIR]`

use anyhow::{Context, Result};

use ccsync::sync::plan::Verdict;
use ccsync::sync::{now_ms, receive_file};

use super::{Env, Outcome};
use crate::cli::ImportArgs;
use crate::error::HintExt;

pub fn run(env: &Env, args: &ImportArgs) -> Result<Outcome> {
    let _lock = env.lock()?;
    let file = &args.file;
    std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    let staging = env.config_dir.staging()?;
    let received = receive_file(file, &staging.path()?.join("import.jsonl.tmp"))
        .with_context(|| format!("{} is not a bundle ccsync can import", file.display()))
        .hint("nothing was changed")?;
    let bundle = &received.meta;

    let dir = match &args.cwd {
        Some(d) => d
            .canonicalize()
            .with_context(|| format!("{} does not exist", d.display()))
            .hint("clone or create the checkout first")?,
        None => env.cwd.clone(),
    };
    let placement = env.resolver().place(&dir.to_string_lossy());
    let keys = match env.config_dir.load_config() {
        Ok(Some(config)) => config.key_map()?,
        _ => Default::default(),
    };
    if placement.key != keys.local(&bundle.project_key) {
        env.ui.warn(format_args!(
            "{} is project {}, but the bundle is for {}; installing for {} as asked",
            dir.display(),
            placement.key,
            bundle.project_key,
            dir.display()
        ));
    }
    // A bundle that knows where it was started within its project goes to
    // the same place in this checkout; an older one goes to DIR itself.
    let root = if bundle.relative_cwd.is_some() {
        placement.root.clone()
    } else {
        dir.clone()
    };
    let installer = env.installer(args.force)?;
    ccsync::sync::make_durable(received.files())
        .with_context(|| format!("cannot make {} durable", received.transcript.display()))?;
    let outcome = installer.install(std::slice::from_ref(&received), &root)?;
    installer.sync_written();
    super::notes::warn_skewed(env, installer.take_skewed());
    super::notes::note_clamped(env, &installer);

    let mut state = env.config_dir.load_state()?;
    let loaded = state.clone();
    state.remember(&placement.key, &placement.root, now_ms());
    super::pull::record_placements(&mut state, std::slice::from_ref(&outcome));
    env.save_state(&loaded, &state);

    super::pull::describe(env, &outcome);
    if outcome.from.is_none()
        && outcome
            .verdicts
            .iter()
            .all(|(_, v)| *v == Verdict::UpToDate)
    {
        env.ui.status(format_args!(
            "{} is already up to date at {}",
            outcome.id,
            outcome.transcript.display()
        ));
    }
    if args.json {
        env.ui.json(&super::pull::OutcomeJson::new(&outcome))?;
    }
    let diverged = outcome
        .verdicts
        .iter()
        .any(|(_, v)| *v == Verdict::Diverged);
    Ok(if diverged {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}
