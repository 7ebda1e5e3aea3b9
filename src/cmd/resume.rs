//! `ccsync resume [SESSION] [-- CLAUDE_ARGS…]`: pull, continue the session
//! in Claude Code where it belongs here, push it when the client exits.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use super::{Env, Local, Outcome};
use crate::cli::{PullArgs, PushArgs, ResumeArgs};
use crate::error::hinted;

pub fn run(env: &Env, args: &ResumeArgs) -> Result<Outcome> {
    // What other machines did first, so the client loads it. An
    // unreachable sync dir does not stop work here.
    let pulled = super::pull::run(
        env,
        &PullArgs {
            dry_run: false,
            session: args.session.clone(),
            all: false,
            force: false,
            json: false,
            except: None,
        },
    );
    if let Err(e) = pulled {
        env.ui.warn(format_args!(
            "could not pull ({e:#}); resuming what is on this machine"
        ));
    }

    let (id, cwd) = {
        let mut index = env.load_index();
        let state = env.config_dir.load_state()?;
        let mut resolver = env.resolver();
        let local = Local::scan(env, &mut resolver, &mut index, &state)?;
        let here = resolver.place(&env.cwd.to_string_lossy());
        let (session, _) = local.chosen(args.session.as_deref(), &here, env)?;
        env.save_index(&index);
        (session.file.id.clone(), PathBuf::from(&session.cwd))
    };
    if !cwd.is_dir() {
        return Err(hinted(
            format!(
                "session {id} belongs in {}, which does not exist here",
                cwd.display()
            ),
            "create it (or check out the project there), then resume again",
        ));
    }
    let registry = ccsync::claude::registry::Registry::scan(env.claude.root());
    if let Some(pid) = registry.running(id.as_str()) {
        return Err(hinted(
            format!("session {id} is already running here (Claude Code process {pid})"),
            "switch to it, or close it first",
        ));
    }

    let client = std::env::var_os("CCSYNC_CLAUDE")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "claude".into());
    env.ui.status(format_args!(
        "resuming {id} in {} with {}",
        cwd.display(),
        client.to_string_lossy()
    ));
    let status = Command::new(&client)
        .arg("--resume")
        .arg(id.as_str())
        .args(&args.claude_args)
        .current_dir(&cwd)
        .status()
        .with_context(|| {
            format!(
                "cannot start {} (set CCSYNC_CLAUDE to the Claude Code client)",
                client.to_string_lossy()
            )
        })?;

    // Whatever happened in the client goes to the other machines, also
    // when it failed.
    let pushed = super::push::run(
        env,
        &PushArgs {
            dry_run: false,
            session: Some(id.to_string()),
            all: false,
            force: false,
            allow_secrets: false,
            json: false,
        },
    );
    if let Err(e) = pushed {
        env.ui.warn(format_args!(
            "could not push {id} ({e:#}); run `ccsync push {id}` when the sync dir is reachable"
        ));
    }
    Ok(Outcome::Code(exit_code(status)))
}

/// The client's exit status as ours: its code, or 128 + the signal that
/// ended it.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return u8::try_from(128 + signal).unwrap_or(1);
    }
    1
}
