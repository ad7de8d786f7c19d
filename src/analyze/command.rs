//! `h2lab analyze PREFIX [PREFIX…]`: the command.

use std::path::PathBuf;

use anyhow::anyhow;

use super::{analyze, Json, Markdown, Table, TraceFile, COMPONENTS};
use crate::cli::{self, bad_input, CmdResult, Exit};
use crate::export::Exporter;

/// Where each request's time went, from one or more traces side by side:
/// per action (calls and own time per request, share of the serving
/// threads' busy time, octets per call); the loop's time (busy, idle,
/// descheduled); each request's latency from its HEADERS in to the end of
/// the write_socket that carried its answer, cut into components that sum
/// to it (waiting before the answer, read, decrypt, engine, work,
/// encrypt, waiting for the write, the write); the clients' shares.
///
/// What a trace cannot tell (lost records, no metadata, requests cut by
/// the end of the trace) is said first. Exit status: 0, or 2 when a trace
/// cannot be read, lost records (see --allow-losses), or still has its
/// spool (its server is running, or was killed: `h2lab trace-convert
/// PREFIX` formats what it recorded).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Traces, by the prefix given to `serve --trace` (or any of its
    /// files: PREFIX.csv, PREFIX.json, PREFIX.meta.json).
    #[arg(required = true, value_name = "PREFIX")]
    pub traces: Vec<PathBuf>,
    /// Print a JSON array of the analyses instead of the table.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print markdown tables instead (for write-ups).
    #[arg(long)]
    pub markdown: bool,
    /// Also write every request to FILE as CSV: its trace, client, stream,
    /// start (ns into the trace), latency and each component (ns), which
    /// sum to the latency.
    #[arg(long, value_name = "FILE")]
    pub requests: Option<PathBuf>,
    /// Analyse even a trace that lost records (queue full, limit) or is
    /// incomplete, as its PREFIX.meta.json says; the figures then count
    /// only what it holds, and the output says so first.
    #[arg(long)]
    pub allow_losses: bool,
}

pub fn run(args: Args) -> CmdResult {
    let mut all = Vec::new();
    for path in &args.traces {
        let file = TraceFile::read(path).map_err(bad_input)?;
        if let (Some(losses), false) = (file.losses(), args.allow_losses) {
            return Err(bad_input(anyhow!(
                "{}: the trace lost records ({losses}): not analysed (--allow-losses analyses what it holds)",
                file.prefix.display()
            )));
        }
        all.push(analyze(&file));
    }
    let text = if args.json {
        Json.export(&all)?
    } else if args.markdown {
        Markdown.export(&all).unwrap_or_else(|e| match e {})
    } else {
        Table.export(&all).unwrap_or_else(|e| match e {})
    };
    if let Some(path) = &args.requests {
        write_requests(path, &all).map_err(|e| bad_input(anyhow!("{}: {e}", path.display())))?;
    }
    cli::out(text);
    Ok(Exit::Success)
}

/// `--requests FILE`: one row per request of every trace.
fn write_requests(path: &std::path::Path, all: &[super::Analysis]) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_path(path)?;
    let mut head = vec!["trace", "client", "stream", "start_ns", "latency_ns"];
    let names: Vec<String> = COMPONENTS.iter().map(|(n, _)| format!("{n}_ns")).collect();
    head.extend(names.iter().map(String::as_str));
    w.write_record(&head)?;
    for a in all {
        for r in &a.each {
            let mut row = vec![
                a.trace.clone(),
                r.client.to_string(),
                r.stream.to_string(),
                r.start_ns.to_string(),
                r.latency_ns.to_string(),
            ];
            row.extend(r.components.iter().map(u64::to_string));
            w.write_record(&row)?;
        }
    }
    w.flush()?;
    Ok(())
}
