//! Colour, only where it helps and only on a terminal: `--color auto`
//! (the default) colours a stream that is a terminal, unless `NO_COLOR` is
//! set (or `CLICOLOR=0`); `always` and `never` decide regardless. Printing
//! through `anstream` strips the styles wherever they are not wanted.

use anstyle::{AnsiColor, Effects, Style};

use crate::cli::ColorWhen;

pub const ERROR: Style = AnsiColor::Red.on_default().effects(Effects::BOLD);
pub const WARNING: Style = AnsiColor::Yellow.on_default().effects(Effects::BOLD);
pub const CAUSE: Style = Style::new().effects(Effects::BOLD);
pub const HINT: Style = AnsiColor::Cyan.on_default().effects(Effects::BOLD);
/// Something done: `pushed`, `installed`, doctor's `ok`.
pub const DONE: Style = AnsiColor::Green.on_default().effects(Effects::BOLD);
pub const HEADER: Style = Style::new().effects(Effects::BOLD.insert(Effects::UNDERLINE));

/// Sets the choice for every stream for the rest of the run.
pub fn init(when: ColorWhen) {
    let choice = match when {
        ColorWhen::Auto => anstream::ColorChoice::Auto,
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
}

/// The verbs that open a status line saying something was done.
const DONE_VERBS: [&str; 11] = [
    "pushed",
    "pulled",
    "installed",
    "updated",
    "exported",
    "imported",
    "initialised",
    "removed",
    "moved",
    "carried",
    "forgot",
];

/// A status line with its opening verb in [`DONE`], if it opens with one.
pub fn status_line(line: &str) -> String {
    let verb = line.split(' ').next().unwrap_or("");
    if DONE_VERBS.contains(&verb) {
        format!("{DONE}{verb}{DONE:#}{}", &line[verb.len()..])
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_opening_verb_is_coloured() {
        assert_eq!(
            status_line("pushed 1 session"),
            format!("{DONE}pushed{DONE:#} 1 session")
        );
        assert_eq!(status_line("nothing was pushed"), "nothing was pushed");
        assert_eq!(status_line(""), "");
    }
}
