//! The plumbing every command shares, and nothing else: the exit-code
//! policy (0 success, 1 the command ran and found a failure: failed
//! requests, a regression, an error while running; 2 input it cannot use:
//! bad arguments, unreadable files), the output helper, and the value
//! parsers of the options. The commands import it; the library under them
//! (frame, engine, tls, server, and trace but for its `trace-convert`
//! command) never does, and it imports nothing of the crate. The command
//! enum that ties the commands together is [`crate::app`], above them all.

pub mod values;

use std::io::Write;

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

/// Writes to stdout. A reader that went away (`| head`) is no error to
/// report, and never a panic: the rest of the output is dropped.
pub fn out(text: impl AsRef<str>) {
    let _ = std::io::stdout().lock().write_all(text.as_ref().as_bytes());
}
