//! The command line's edge: the command enum, dispatch to each command's
//! module (which owns its options and its `run`), and the exit-code policy:
//! 0 success, 1 the command ran and found a failure (failed requests, a
//! regression, an error while running), 2 input it cannot use (bad
//! arguments, unreadable files). Errors print as one line, `h2lab: …`.

pub mod values;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "h2lab",
    version,
    about = "A laboratory for HTTP/2 server architectures: one tiny service (\"Hello World\\n\" \
             for every request) on interchangeable server designs."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Serve(crate::serve::Args),
    Certs(crate::certs::Args),
    Compare(crate::compare::Args),
    Load(crate::load::command::Args),
    Bench(crate::bench::command::Args),
    Report(crate::bench::report::Args),
    TraceConvert(crate::trace::command::Args),
}

/// How a command that did its job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exit 0.
    Success,
    /// Exit 1: it ran, and found a failure (failed requests, a regression).
    Failure,
}

/// Why a command could not do its job.
#[derive(Debug)]
pub enum CmdError {
    /// Exit 2: input it cannot use (a bad argument, an unreadable file).
    Input(anyhow::Error),
    /// Exit 1: it failed while running.
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for CmdError {
    fn from(e: E) -> Self {
        CmdError::Failed(e.into())
    }
}

/// Input the command cannot use: exit 2.
pub fn bad_input(e: impl Into<anyhow::Error>) -> CmdError {
    CmdError::Input(e.into())
}

pub type CmdResult = Result<Exit, CmdError>;

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(args) => crate::serve::run(args),
        Command::Certs(args) => crate::certs::run(args),
        Command::Compare(args) => crate::compare::run(args),
        Command::Load(args) => crate::load::command::run(args),
        Command::Bench(args) => crate::bench::command::run(args),
        Command::Report(args) => crate::bench::report::run(args),
        Command::TraceConvert(args) => crate::trace::command::run(args),
    };
    match result {
        Ok(Exit::Success) => ExitCode::SUCCESS,
        Ok(Exit::Failure) => ExitCode::FAILURE,
        Err(CmdError::Failed(e)) => {
            eprintln!("h2lab: {e:#}");
            ExitCode::FAILURE
        }
        Err(CmdError::Input(e)) => {
            eprintln!("h2lab: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Writes to stdout. A reader that went away (`| head`) is no error to
/// report, and never a panic: the rest of the output is dropped.
pub fn out(text: impl AsRef<str>) {
    let _ = std::io::stdout().lock().write_all(text.as_ref().as_bytes());
}

/// clap's multi-line usage error as one line (the hint to try --help dropped).
fn one_line(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_are_one_line() {
        let err = Cli::try_parse_from(["h2lab", "serve", "--dispatch", "nope"]).unwrap_err();
        let line = one_line(&err.render().to_string());
        assert!(!line.contains('\n'));
        assert!(line.contains("invalid value 'nope'"), "{line}");
        assert!(line.contains("single"), "lists the values: {line}");
    }

    #[test]
    fn every_command_has_its_help() {
        let cmd = Cli::command();
        for name in [
            "serve",
            "certs",
            "compare",
            "load",
            "bench",
            "report",
            "trace-convert",
        ] {
            let sub = cmd.find_subcommand(name).expect(name);
            assert!(sub.get_about().is_some(), "{name} has no help text");
        }
    }
}
