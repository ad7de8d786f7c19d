//! The spool: raw fixed-size records on disk, past the writer's memory in
//! deferred mode; formatted at stop, or after a crash by
//! `h2lab trace-convert` ([`convert`]).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::files::{create, finish_json, JSON_OPEN};
use super::format::Formatter;
use crate::trace::meta::TraceMeta;
use crate::trace::schema::{Packed, CSV_HEADER};
use crate::trace::{TraceConfig, TraceError};

/// Octets of one record in the spool.
pub const SPOOL_RECORD: usize = Packed::SIZE;

/// Formats every record of a spool file into both outputs.
pub(super) fn format_spool(
    mut spool: File,
    fmt: &mut Formatter,
    csv: &mut impl Write,
    json: &mut impl Write,
) -> io::Result<u64> {
    spool.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::with_capacity(1 << 20, spool);
    let mut chunk = vec![0u8; SPOOL_RECORD * 4096];
    let mut n = 0u64;
    loop {
        let got = read_full(&mut reader, &mut chunk)?;
        // A record cut short by a crash is left out.
        for raw in chunk[..got - got % SPOOL_RECORD].chunks_exact(SPOOL_RECORD) {
            let raw = raw.try_into().expect("a whole record");
            fmt.record(&Packed::from_bytes(raw).unpack());
            n += 1;
        }
        fmt.drain(csv, json)?;
        if got < chunk.len() {
            return Ok(n);
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the octets read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

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
    let spool = File::open(&spool_path).map_err(|e| read_err(&spool_path, e))?;
    let mut csv = create(config.csv_path())?;
    let mut json = create(config.json_path())?;
    let mut fmt = Formatter::new(&meta.setup);
    let done = (|| -> io::Result<u64> {
        writeln!(csv, "{CSV_HEADER}")?;
        json.write_all(JSON_OPEN)?;
        let n = format_spool(spool, &mut fmt, &mut csv, &mut json)?;
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
