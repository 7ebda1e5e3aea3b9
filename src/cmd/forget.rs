//! `ccsync forget SESSION | --machine NAME [--yes] [--force]`

use anyhow::Result;

use ccsync::names::MachineName;
use ccsync::transport::ObjectName;

use super::{Env, Outcome};
use crate::cli::ForgetArgs;
use crate::error::hinted;
use crate::ui;

pub fn run(env: &Env, args: &ForgetArgs) -> Result<Outcome> {
    let (_, me, transport) = env.open_transport()?;
    let _lock = env.lock()?;
    let listing = transport.list()?;
    let (what, doomed): (String, Vec<ObjectName>) = match (&args.session, &args.machine) {
        (Some(wanted), _) => {
            let id = super::remote_session(&listing.objects, &transport.location(), wanted, None)?;
            let doomed = listing
                .objects
                .iter()
                .filter(|o| o.name.copy_of().is_some_and(|(s, _)| s == id))
                .map(|o| o.name.clone())
                .collect();
            (format!("session {id}"), doomed)
        }
        (None, Some(name)) => {
            let machine = MachineName::parse(name)?;
            if machine == me && !args.force {
                return Err(hinted(
                    format!(
                        "{machine} is this machine; forgetting it removes every copy it pushed"
                    ),
                    "pass --force if that is what you want",
                ));
            }
            let doomed: Vec<ObjectName> = listing
                .objects
                .iter()
                .filter(|o| {
                    o.name.copy_of().is_some_and(|(_, m)| m == machine)
                        || o.name.claimed_machine().as_ref() == Some(&machine)
                        || o.name.setup_machine().as_ref() == Some(&machine)
                })
                .map(|o| o.name.clone())
                .collect();
            (format!("machine {machine}"), doomed)
        }
        (None, None) => unreachable!("clap requires one"),
    };
    if doomed.is_empty() {
        return Err(hinted(
            format!("{} holds nothing of {what}", transport.location()),
            "`ccsync list --remote` shows what is there",
        ));
    }
    let sessions = doomed.iter().filter(|n| n.session().is_some()).count();
    let question = format!(
        "remove {} of {what} from {}{}?",
        ui::plural(sessions, "copy", "copies"),
        transport.location(),
        if sessions < doomed.len() {
            " and its name claim"
        } else {
            ""
        }
    );
    if !args.yes && !confirm(&question)? {
        env.ui.status("nothing removed");
        return Ok(Outcome::Success);
    }
    let mut failed = 0;
    let mut index = env.load_index();
    for (name, result) in doomed.iter().zip(transport.remove(&doomed)?) {
        match result {
            Ok(()) => index.forget_pushed(&name.to_string()),
            Err(reason) => {
                failed += 1;
                env.ui.warn(format_args!("not removed {name}: {reason}"));
            }
        }
    }
    env.save_index(&index);
    env.ui.status(format_args!(
        "removed {} of {what} from {}; local transcripts are untouched",
        ui::plural(doomed.len() - failed, "file", "files"),
        transport.location()
    ));
    Ok(if failed > 0 {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}

/// Asks on the terminal; without one, says to pass --yes.
fn confirm(question: &str) -> Result<bool> {
    match ui::ask(question)? {
        Some(yes) => Ok(yes),
        None => Err(crate::error::hinted(
            question,
            "pass --yes to confirm (there is no terminal to ask on)",
        )),
    }
}
