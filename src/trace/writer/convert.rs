//! `h2lab trace-convert`'s work: the files of a trace whose server died,
//! from the spool it left (`spool.rs`) and the metadata written at start.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::files::{create, finish_json, JSON_OPEN};
use super::format::Formatter;
use super::spool::{format_kept, header};
use crate::trace::meta::TraceMeta;
use crate::trace::schema::CSV_HEADER;
use crate::trace::{TraceConfig, TraceError};

/// Formats a crashed trace's spool: `PREFIX.json` and `PREFIX.csv` from
/// `PREFIX.spool` and the metadata written at start; the result says it is
/// incomplete. Returns the records formatted.
pub fn convert(config: &TraceConfig) -> Result<(u64, TraceMeta), TraceError> {
    let read_err = |path: &Path, error: io::Error| TraceError::Read {
        path: path.to_owned(),
        error,
    };
    let meta_path = config.meta_path();
    let mut meta = TraceMeta::read(&meta_path).map_err(|e| read_err(&meta_path, e))?;
    let spool_path = config.spool_path();
    let mut spool = File::open(&spool_path).map_err(|e| read_err(&spool_path, e))?;
    let (room, held) = header(&spool_path, &mut spool).map_err(|e| read_err(&spool_path, e))?;
    let mut csv = create(config.csv_path())?;
    let mut json = create(config.json_path())?;
    let mut fmt = Formatter::new(&meta.setup);
    let done = (|| -> io::Result<u64> {
        writeln!(csv, "{CSV_HEADER}")?;
        json.write_all(JSON_OPEN)?;
        let n = format_kept(&spool, room, held, &mut fmt, &mut csv, &mut json)?;
        csv.flush()?;
        Ok(n)
    })()
    .map_err(TraceError::Write)?;
    meta.complete = false;
    meta.records = done;
    finish_json(json, &meta).map_err(TraceError::Write)?;
    meta.write(&meta_path).map_err(TraceError::Write)?;
    Ok((done, meta))
}
