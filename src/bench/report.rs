//! `h2lab report FILE.csv`: markdown for write-ups from a bench CSV (the
//! [`Markdown`] exporter over the medians read back), then the machine the
//! report was made on.

use std::path::PathBuf;

use anyhow::Context;

use super::export::{Exporter, Markdown};
use super::row;
use crate::cli::{self, CmdResult, Exit};

/// Markdown for write-ups from a bench CSV (`h2lab bench --out`): per
/// clients × pipeline × h2c/TLS, every server's median req/s and CPU per
/// request and its ratio to a baseline, then the machine's description
/// (make the report where the bench ran).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A CSV written by `h2lab bench --out`.
    pub csv: PathBuf,
    /// The server ratios are taken to, without its TLS provider, e.g.
    /// `h2o/peer` or `poll/mini` (default: the fastest peer present, else
    /// the fastest server).
    #[arg(long, value_name = "SERVER")]
    pub baseline: Option<String>,
    /// Write the markdown here instead of stdout.
    #[arg(long, value_name = "FILE.md")]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> CmdResult {
    let results = row::read(&args.csv)?;
    let machine = match &results.machine {
        Some(m) => m.markdown("Machine (where the bench ran)"),
        None => super::Machine::here().markdown("Machine (where this report was made)"),
    };
    let markdown = Markdown {
        baseline: args.baseline.as_deref(),
        source: &args.csv,
        machine,
    }
    .export(&results)?;
    match &args.out {
        Some(path) => std::fs::write(path, markdown)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => cli::out(markdown),
    }
    Ok(Exit::Success)
}
