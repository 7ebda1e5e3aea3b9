//! Printing: data on stdout, status on stderr, warnings as `Warning: …`
//! (errors: `crate::error`). Styles go through `anstream`, which drops them
//! where colour is not wanted (`crate::color`).

use std::fmt::Display;
use std::io::{self, BufRead, Write};
use std::time::SystemTime;

use serde::Serialize;

pub struct Ui {
    quiet: bool,
    silent: bool,
}

/// A progress bar on stderr, drawn only when stderr is a terminal and
/// status is not silenced; otherwise it prints nothing at all.
pub struct Bar {
    bar: Option<indicatif::ProgressBar>,
    what: &'static str,
    /// Showing bytes (a large transfer) rather than sessions.
    by_bytes: std::cell::Cell<bool>,
}

/// Below this many bytes a transfer is over before a bar would help.
const BYTES_WORTH_A_BAR: u64 = 8 << 20;

impl ccsync::sync::Progress for Bar {
    fn bytes(&self, total: u64) {
        if let Some(bar) = &self.bar {
            if total < BYTES_WORTH_A_BAR {
                return;
            }
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})",
            ) {
                bar.set_style(style);
            }
            bar.set_length(total);
            bar.set_position(0);
            bar.set_message(self.what);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.by_bytes.set(true);
        }
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = self.bar.as_ref().filter(|_| self.by_bytes.get()) {
            bar.inc(n);
        }
    }

    fn start(&self, total: u64) {
        if let Some(bar) = &self.bar {
            if self.by_bytes.get() {
                // The bytes tell how it goes; a count of sessions would
                // start the bar again from nothing.
                return;
            }
            bar.set_length(total);
            bar.set_message(self.what);
            // Small jobs finish before a bar would help.
            if total >= 20 {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
        }
    }

    fn step(&self) {
        if let Some(bar) = self.bar.as_ref().filter(|_| !self.by_bytes.get()) {
            bar.inc(1);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Ui {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            silent: false,
        }
    }

    /// Prints nothing at all, warnings included (`watch` logs for it).
    pub fn silent() -> Self {
        Self {
            quiet: true,
            silent: true,
        }
    }

    /// Progress and summaries, silenced by `-q`.
    pub fn status(&self, msg: impl Display) {
        if !self.quiet {
            anstream::eprintln!("{}", crate::color::status_line(&msg.to_string()));
        }
    }

    /// A progress bar for `what` ("pushing", "pulling").
    pub fn bar(&self, what: &'static str) -> Bar {
        use std::io::IsTerminal;
        let bar = (!self.quiet && io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::hidden(),
            );
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} sessions")
            {
                bar.set_style(style);
            }
            bar
        });
        Bar {
            bar,
            what,
            by_bytes: Default::default(),
        }
    }

    /// Something was skipped or looks wrong; never silenced.
    pub fn warn(&self, msg: impl Display) {
        if !self.silent {
            let style = crate::color::WARNING;
            anstream::eprintln!("{style}Warning:{style:#} {msg}");
        }
    }

    /// A line of data on stdout; styles in it show only on a terminal.
    pub fn data(&self, line: impl Display) -> io::Result<()> {
        writeln!(anstream::stdout().lock(), "{line}")
    }

    pub fn json(&self, value: &impl Serialize) -> io::Result<()> {
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)
    }
}

/// Asks a yes/no question on the terminal (stderr); `None` when stdin is
/// not a terminal, so there is nobody to ask.
pub fn ask(question: &str) -> io::Result<Option<bool>> {
    use std::io::IsTerminal;
    if !io::stdin().is_terminal() {
        return Ok(None);
    }
    let answer = ask_line(&format!("{question} [y/N]"))?;
    Ok(Some(matches!(answer.trim(), "y" | "Y" | "yes")))
}

/// Prints `prompt` on stderr and reads a line from stdin.
pub fn ask_line(prompt: &str) -> io::Result<String> {
    eprint!("{prompt} ");
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(answer)
}

/// `12.4 MB`, in decimal units like most file managers.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `2026-11-21 10:58` in UTC.
pub fn time(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(..16).map_or(s.clone(), |d| d.replacen('T', " ", 1))
}

/// RFC 3339, for JSON.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `", 3 side files"`, or nothing when there are none.
pub fn side_files(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {}", plural(n, "side file", "side files"))
    }
}

/// Warns about side files that could not be taken along.
pub fn report_skipped_parts(ui: &Ui, skipped: &[(std::path::PathBuf, String)]) {
    for (path, why) in skipped {
        ui.warn(format_args!("left behind {}: {why}", path.display()));
    }
}

/// Warns of each credential found in a session: where and what kind, never
/// the value; the first ten, then how many more.
pub fn report_secrets(
    ui: &Ui,
    id: &ccsync::names::SessionId,
    secrets: &ccsync::sync::scan::Secrets,
    what_happened: &str,
) {
    if secrets.is_empty() {
        return;
    }
    const SHOWN: usize = 10;
    for (path, f) in secrets.found.iter().take(SHOWN) {
        ui.warn(format_args!(
            "session {id}: line {} of {} holds what looks like a {}",
            f.line,
            path.display(),
            f.kind
        ));
    }
    let more = secrets.total.saturating_sub(SHOWN as u64);
    if more > 0 {
        ui.warn(format_args!("session {id}: and {more} more"));
    }
    ui.warn(format_args!(
        "session {id} {what_happened} as it is; rotate keys that leave your machine. `secrets = \"refuse\"` in {} keeps such sessions here",
        "config.toml"
    ));
}

/// A word a POSIX shell reads back as `s`, quoted only when it must be:
/// for commands printed for the user to copy.
pub fn shell_word(s: &str) -> String {
    shlex::try_quote(s).map_or_else(|_| s.to_owned(), |q| q.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(12_400_000), "12.4 MB");
        assert_eq!(size(1_500), "1.5 kB");
    }

    #[test]
    fn times() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_715_380_000);
        assert_eq!(time(t), "2024-05-10 22:26");
        assert_eq!(rfc3339(t), "2024-05-10T22:26:40Z");
    }
}
