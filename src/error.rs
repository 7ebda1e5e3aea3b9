//! How a failed command reports itself, in jj's convention:
//!
//! ```text
//! Error: <what went wrong>
//! Caused by: <why>            (numbered lines under `Caused by:` when several)
//! Hint: <what to do about it>
//! ```
//!
//! A hint travels with the error ([`hinted`], [`HintExt`]) rather than
//! being glued to its message, so the report can set it apart.

use std::fmt::{self, Display};
use std::io;
use std::process::ExitCode;

use crate::color;

/// An error and what the user can do about it. It displays as the error
/// alone and keeps the error's causes, so `Caused by:` is unchanged.
#[derive(Debug)]
struct Hinted {
    error: anyhow::Error,
    hint: String,
}

impl Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// An error `message`, with `hint` saying what to do.
pub fn hinted(message: impl Display, hint: impl Display) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        error: anyhow::anyhow!("{message}"),
        hint: hint.to_string(),
    })
}

pub trait HintExt<T> {
    /// Adds what the user can do about this error.
    fn hint(self, hint: impl Display) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> HintExt<T> for Result<T, E> {
    fn hint(self, hint: impl Display) -> anyhow::Result<T> {
        self.map_err(|e| {
            anyhow::Error::new(Hinted {
                error: e.into(),
                hint: hint.to_string(),
            })
        })
    }
}

/// The report for `err`, without colour: what [`report`] prints.
pub fn render(err: &anyhow::Error) -> Vec<(Label, String)> {
    let mut lines = vec![(Label::Error, err.to_string())];
    let mut printed = err.to_string();
    let mut causes = Vec::new();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        // Domain errors already carry their source in their message.
        if !printed.contains(&text) {
            printed.push_str(&text);
            causes.push(text);
        }
    }
    match causes.as_slice() {
        [] => {}
        [one] => lines.push((Label::CausedBy, one.clone())),
        many => {
            lines.push((Label::CausedBy, String::new()));
            for (i, cause) in many.iter().enumerate() {
                lines.push((Label::Plain, format!("{}: {cause}", i + 1)));
            }
        }
    }
    let mut hints: Vec<&str> = Vec::new();
    for hinted in err.chain().filter_map(|e| e.downcast_ref::<Hinted>()) {
        if !hints.contains(&hinted.hint.as_str()) {
            hints.push(&hinted.hint);
        }
    }
    lines.extend(hints.into_iter().map(|h| (Label::Hint, h.to_owned())));
    lines
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Error,
    CausedBy,
    Hint,
    Plain,
}

/// Prints an error, its causes and hints on stderr, and picks the exit
/// code. A closed pipe is no error: `ccsync list | head` exits quietly.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err
        .chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    for (label, text) in render(err) {
        let (style, name) = match label {
            Label::Error => (color::ERROR, "Error:"),
            Label::CausedBy => (color::CAUSE, "Caused by:"),
            Label::Hint => (color::HINT, "Hint:"),
            Label::Plain => {
                anstream::eprintln!("{text}");
                continue;
            }
        };
        if text.is_empty() {
            anstream::eprintln!("{style}{name}{style:#}");
        } else {
            anstream::eprintln!("{style}{name}{style:#} {text}");
        }
    }
    let busy = err
        .chain()
        .any(|e| matches!(e.downcast_ref(), Some(ccsync::config::ConfigError::Busy(_))));
    if busy {
        ExitCode::from(4)
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn text(err: &anyhow::Error) -> String {
        render(err)
            .into_iter()
            .map(|(label, text)| {
                let name = match label {
                    Label::Error => "Error:",
                    Label::CausedBy => "Caused by:",
                    Label::Hint => "Hint:",
                    Label::Plain => "",
                };
                format!("{name} {text}").trim().to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn an_error_alone() {
        assert_eq!(text(&anyhow::anyhow!("it broke")), "Error: it broke");
    }

    #[test]
    fn one_cause_on_the_same_line_and_several_numbered() {
        let io = io::Error::other("disk full");
        let one = Err::<(), _>(io).context("cannot write /x").unwrap_err();
        assert_eq!(text(&one), "Error: cannot write /x\nCaused by: disk full");
        let two = Err::<(), _>(one).context("cannot push").unwrap_err();
        assert_eq!(
            text(&two),
            "Error: cannot push\nCaused by:\n1: cannot write /x\n2: disk full"
        );
    }

    #[test]
    fn a_hint_comes_last_even_under_context() {
        let err = Err::<(), _>(hinted("no config", "run `ccsync init <dir>`"))
            .context("cannot push")
            .unwrap_err();
        assert_eq!(
            text(&err),
            "Error: cannot push\nCaused by: no config\nHint: run `ccsync init <dir>`"
        );
        let err = Err::<(), _>(io::Error::other("refused"))
            .context("cannot reach host")
            .hint("check the network")
            .unwrap_err();
        assert_eq!(
            text(&err),
            "Error: cannot reach host\nCaused by: refused\nHint: check the network"
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let inner = anyhow::anyhow!("bad byte");
        let err = inner.context("cannot read x: bad byte");
        assert_eq!(text(&err), "Error: cannot read x: bad byte");
    }
}
