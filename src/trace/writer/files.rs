//! The files of one trace, created at start (a bad path is an error then,
//! not a trace silently missing at the end), and the JSON's crash-safe
//! opening and its completion.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::spool::Spool;
use crate::trace::meta::TraceMeta;
use crate::trace::schema::{Packed, CSV_HEADER};
use crate::trace::{TraceConfig, TraceError};

/// The JSON's first 16 octets while it is being written, and after a clean end.
pub(super) const JSON_OPEN: &[u8; 16] = b"               [";
pub(super) const JSON_OBJECT: &[u8; 16] = b"{\"traceEvents\":[";
/// The files of one trace.
pub(in crate::trace) struct Files {
    pub(super) json: BufWriter<File>,
    pub(super) csv: BufWriter<File>,
    pub(super) spool_path: PathBuf,
    /// Deferred mode: where the records wait until stop, created, mapped
    /// and touched at start (`spool.rs`).
    pub(super) spool: Option<Spool>,
    pub(super) meta_path: PathBuf,
}

pub(super) fn create(path: PathBuf) -> Result<BufWriter<File>, TraceError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| TraceError::Create {
            path: dir.to_owned(),
            error,
        })?;
    }
    open_rw(&path).map_err(|error| TraceError::Create { path, error })
}

/// A new, empty file, readable too (the spool is read back at stop).
pub(super) fn open_rw(path: &Path) -> io::Result<BufWriter<File>> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map(|f| BufWriter::with_capacity(256 * 1024, f))
}

impl Files {
    /// Creates every file now (and their folder), so that a bad path is an
    /// error at start, not a trace silently missing at the end; writes the
    /// CSV header, the JSON's opening and the metadata known at start.
    pub(in crate::trace) fn create(
        config: &TraceConfig,
        meta: &TraceMeta,
    ) -> Result<Self, TraceError> {
        let mut files = Self {
            json: create(config.json_path())?,
            csv: create(config.csv_path())?,
            spool_path: config.spool_path(),
            spool: match config.live {
                true => None,
                false => Some(
                    Spool::create(&config.spool_path(), config.memory / Packed::SIZE).map_err(
                        |error| TraceError::Create {
                            path: config.spool_path(),
                            error,
                        },
                    )?,
                ),
            },
            meta_path: config.meta_path(),
        };
        let write = |f: &mut Files| -> io::Result<()> {
            writeln!(f.csv, "{CSV_HEADER}")?;
            f.csv.flush()?;
            f.json.write_all(JSON_OPEN)?;
            f.json.flush()?;
            meta.write(&f.meta_path)
        };
        write(&mut files).map_err(TraceError::Write)?;
        Ok(files)
    }
}

/// Ends the array, adds the metadata, and turns the array form into the
/// object form by overwriting the 16 octets it began with.
pub(super) fn finish_json(json: BufWriter<File>, meta: &TraceMeta) -> io::Result<()> {
    let mut json = json;
    write!(json, "\n],\n\"displayTimeUnit\":\"ns\",\n\"metadata\":")?;
    serde_json::to_writer(&mut json, meta).map_err(io::Error::other)?;
    json.write_all(b"\n}\n")?;
    let mut file = json.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(JSON_OBJECT)?;
    file.sync_all()?;
    Ok(())
}
