//! The command line's top: the enum of commands, dispatch to each
//! command's module (which owns its options and its `run`), and the
//! process's exit code from what the command returned (the policy is in
//! [`crate::cli`]). Errors print as one line, `h2lab: …`. Nothing imports
//! this module but `main.rs`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cli::{CmdError, Exit};

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
    Analyze(crate::analyze::command::Args),
    Load(crate::load::command::Args),
    Bench(Box<crate::bench::command::Args>),
    Ab(crate::bench::ab::Args),
    BenchCompare(crate::bench::diff::Args),
    Report(crate::bench::report::Args),
    TraceConvert(crate::trace::command::Args),
    /// For `load --load-hosts` on another host: our version, then our
    /// clock for every line read, until the input ends.
    #[command(hide = true)]
    RemoteClock,
    /// For `bench --server-host` on the server's host: a cell's server,
    /// metered when asked.
    #[command(hide = true)]
    RemoteServer(crate::bench::server_host::AgentArgs),
}

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
        Command::Analyze(args) => crate::analyze::command::run(args),
        Command::Load(args) => crate::load::command::run(args),
        Command::Bench(args) => crate::bench::command::run(*args),
        Command::Ab(args) => crate::bench::ab::run(args),
        Command::BenchCompare(args) => crate::bench::diff::run(args),
        Command::Report(args) => crate::bench::report::run(args),
        Command::TraceConvert(args) => crate::trace::command::run(args),
        Command::RemoteServer(args) => crate::bench::server_host::agent(args),
        Command::RemoteClock => {
            crate::hosts::serve_clock(std::io::stdin().lock(), std::io::stdout().lock())
                .map(|()| Exit::Success)
                .map_err(|e| CmdError::Failed(e.into()))
        }
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
