//! `ccsync export [SESSION_ID] [-o FILE]`

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use ccsync::claude::parts::PartFinder;
use ccsync::config::SecretsPolicy;
use ccsync::names::MachineName;
use ccsync::sync::{now_ms, push, scan};

use super::{Env, Local, Outcome};
use crate::cli::ExportArgs;
use crate::ui;

pub fn run(env: &Env, args: &ExportArgs) -> Result<Outcome> {
    let mut resolver = env.resolver();
    let local = Local::scan(
        env,
        &mut resolver,
        &mut env.load_index(),
        &env.config_dir.load_state().unwrap_or_default(),
    )?;
    let here = resolver.place(&env.cwd.to_string_lossy());
    let (session, placement) = local.chosen(args.session.as_deref(), &here, env)?;
    // Export works without `init`: the machine is then named by its host.
    let config = env.config_dir.load_config()?;
    let machine = match &config {
        Some(c) => c.machine_name()?,
        None => MachineName::from_hostname(&gethostname::gethostname().to_string_lossy())
            .unwrap_or_else(|| MachineName::parse("unknown").expect("valid name")),
    };
    let parts = PartFinder::new(&env.claude).find(
        session
            .file
            .path
            .parent()
            .unwrap_or(std::path::Path::new(".")),
        &session.file.id,
    );
    let out = push::prepare(session, parts, placement, &machine, now_ms())?;
    // An export is a file the user handles: warn, never refuse.
    if config.is_none_or(|c| c.secrets != SecretsPolicy::Off) {
        let secrets = scan::outgoing(&out)?;
        ui::report_secrets(&env.ui, &session.file.id, &secrets, "is in the export");
    }
    let target = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.ccsync", session.file.id)));
    let body = if target.as_os_str() == "-" {
        let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
        let body = out.write(&mut stdout)?;
        stdout.flush()?;
        body
    } else {
        out.write_file(
            &target,
            &ccsync::bundle::layers::Layers::default(),
            &ccsync::sync::Quiet,
        )
        .with_context(|| format!("cannot export to {}", target.display()))?
        .0
    };
    if out.partial_tail > 0 {
        env.ui.status(format_args!(
            "left behind the last {}: a line Claude Code is still writing",
            ui::size(out.partial_tail)
        ));
    }
    ui::report_skipped_parts(&env.ui, &out.skipped_parts);
    env.ui.status(format_args!(
        "exported {} ({}, {}{}) to {}",
        session.file.id,
        ui::size(body.len),
        ui::plural(body.lines as usize, "line", "lines"),
        ui::side_files(out.parts.len()),
        if target.as_os_str() == "-" {
            "stdout".to_owned()
        } else {
            // In full: without -o, the file lands wherever the shell was.
            env.cwd.join(&target).display().to_string()
        }
    ));
    Ok(Outcome::Success)
}
