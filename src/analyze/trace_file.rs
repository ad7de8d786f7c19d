//! A trace as `analyze` reads it: `PREFIX.csv` (the action log) and
//! `PREFIX.meta.json` (what the trace says about itself) beside it.

use std::path::{Path, PathBuf};

use crate::csv_file::{self, CsvFileError};
use crate::trace::{CsvRow, TraceConfig, TraceMeta, CSV_HEADER};

#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    #[error(transparent)]
    Csv(#[from] CsvFileError),
    #[error("{}: the server is still running or did not stop cleanly (a clean stop removes its spool); once it is gone, `h2lab trace-convert PREFIX` formats what it recorded", .0.display())]
    Spooled(PathBuf),
}

/// One trace, read whole.
pub struct TraceFile {
    /// The prefix it was written with (`serve --trace PREFIX`).
    pub prefix: PathBuf,
    /// Why there is none, when `PREFIX.meta.json` cannot be read.
    pub meta: Result<TraceMeta, String>,
    pub rows: Vec<CsvRow>,
}

/// The prefix a user means: `PREFIX` itself, or one of its files
/// (`PREFIX.csv`, `PREFIX.json`, `PREFIX.meta.json`, `PREFIX.spool`).
pub fn prefix_of(arg: &Path) -> PathBuf {
    let text = arg.to_string_lossy();
    for ext in [".meta.json", ".csv", ".json", ".spool"] {
        if let Some(stem) = text.strip_suffix(ext) {
            return PathBuf::from(stem);
        }
    }
    arg.to_path_buf()
}

impl TraceFile {
    /// Reads `PREFIX.csv` (an error if it is missing or not an action
    /// log, or if a spool says the server has not stopped cleanly) and,
    /// where it can, `PREFIX.meta.json`.
    pub fn read(arg: &Path) -> Result<TraceFile, TraceFileError> {
        let prefix = prefix_of(arg);
        // The trace's own names for its files.
        let files = TraceConfig::new(&prefix);
        if files.spool_path().exists() {
            return Err(TraceFileError::Spooled(files.spool_path()));
        }
        let rows = csv_file::read(&files.csv_path(), CSV_HEADER, "an h2lab action log")?;
        let meta_path = files.meta_path();
        let meta = TraceMeta::read(&meta_path).map_err(|e| format!("{}: {e}", meta_path.display()));
        Ok(TraceFile { prefix, meta, rows })
    }

    /// What the trace lost, in words, as its metadata says (`None`:
    /// nothing, or no metadata to say it).
    pub fn losses(&self) -> Option<String> {
        self.meta.as_ref().ok().and_then(TraceMeta::losses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_found_from_any_of_its_files() {
        for arg in [
            "t/run.1",
            "t/run.1.csv",
            "t/run.1.json",
            "t/run.1.meta.json",
        ] {
            assert_eq!(prefix_of(Path::new(arg)), PathBuf::from("t/run.1"), "{arg}");
        }
        assert_eq!(
            TraceConfig::new(prefix_of(Path::new("t/run.1.csv"))).meta_path(),
            PathBuf::from("t/run.1.meta.json")
        );
    }
}
