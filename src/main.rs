mod cli;
mod cmd;
mod color;
mod error;
mod ui;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    color::init(cli.color);
    match cmd::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => error::report(&err),
    }
}
