//! `h2lab certs`: writes a fresh development pair (see [`crate::identity`]).

use std::path::PathBuf;

use crate::cli::{out, CmdResult, Exit};
use crate::identity::write_pair;

/// Write a fresh development certificate pair: a CA (ca.pem) and a leaf
/// for localhost, 127.0.0.1 and ::1 (localhost.pem, localhost-key.pem).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write into (created if missing).
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
    /// Replace files that exist already.
    #[arg(long)]
    pub force: bool,
}

/// `h2lab certs`.
pub fn run(args: Args) -> CmdResult {
    for path in write_pair(&args.out, args.force)? {
        out(format!("wrote {}\n", path.display()));
    }
    Ok(Exit::Success)
}
