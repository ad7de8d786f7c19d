//! `h2lab trace-convert PREFIX`: the files of a trace whose server did not
//! stop cleanly (SIGKILL, a crash, the OOM killer), from its spool.

use std::path::PathBuf;

use super::{writer, TraceConfig};
use crate::cli::{bad_input, CmdResult, Exit};

/// Format the spool a killed traced server left (PREFIX.spool, with
/// PREFIX.meta.json) into PREFIX.json and PREFIX.csv; the metadata says the
/// trace is incomplete. A server that stopped cleanly has done this itself.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The --trace PREFIX of the server, e.g. traces/run1.
    pub prefix: PathBuf,
}

pub fn run(args: Args) -> CmdResult {
    let config = TraceConfig::new(args.prefix);
    let (records, _meta) = writer::convert(&config).map_err(bad_input)?;
    eprintln!(
        "h2lab: {} records from {} into {} and {} (marked incomplete)",
        records,
        config.spool_path().display(),
        config.json_path().display(),
        config.csv_path().display()
    );
    std::fs::remove_file(config.spool_path())
        .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", config.spool_path().display()))?;
    Ok(Exit::Success)
}
