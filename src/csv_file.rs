//! CSV files of serde records (the trace's action log, the bench's results),
//! read and written through the `csv` crate, with errors that name the file,
//! the line and the column.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum CsvFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

/// Reads every row of `path`, whose first line must be `header` (`what`
/// names the kind of file in the error when it is not).
pub fn read<T: DeserializeOwned>(
    path: &Path,
    header: &str,
    what: &str,
) -> Result<Vec<T>, CsvFileError> {
    let parse = |line: u64, reason: String| CsvFileError::Parse {
        path: path.to_owned(),
        line,
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| CsvFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    // Lines starting with `#` are comments (a bench CSV's machine block).
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(std::io::BufReader::new(file));
    let found = reader
        .headers()
        .map_err(|e| describe(path, e, &csv::StringRecord::new()))?
        .clone();
    if found.is_empty() {
        return Err(parse(1, "empty file".into()));
    }
    let joined = found.iter().collect::<Vec<&str>>().join(",");
    // A file from before columns were added at the end is read too: the
    // type gives the missing ones their defaults.
    let older = header
        .strip_prefix(joined.as_str())
        .is_some_and(|rest| rest.starts_with(','));
    if joined != header && !older {
        return Err(parse(
            1,
            format!("header {joined:?}: not {what} (expected {header:?})"),
        ));
    }
    reader
        .deserialize()
        .map(|row| row.map_err(|e| describe(path, e, &found)))
        .collect()
}

/// The CSV text of `rows`, the header first (from `T`'s field names).
pub fn to_string<T: Serialize>(rows: impl IntoIterator<Item = T>) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8(bytes).expect("serde CSV of UTF-8 fields is UTF-8"))
}

fn describe(path: &Path, e: csv::Error, header: &csv::StringRecord) -> CsvFileError {
    let line = e.position().map_or(0, |p| p.line());
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} columns, expected {expected_len}"),
        csv::ErrorKind::Deserialize { err, .. } => {
            let column = err
                .field()
                .and_then(|i| header.get(i as usize))
                .unwrap_or("row");
            format!("{column}: {}", err.kind())
        }
        csv::ErrorKind::Io(io) => {
            return CsvFileError::Read {
                path: path.to_owned(),
                source: std::io::Error::new(io.kind(), io.to_string()),
            }
        }
        _ => e.to_string(),
    };
    CsvFileError::Parse {
        path: path.to_owned(),
        line,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Row {
        name: String,
        n: u64,
        opt: Option<f64>,
    }

    fn file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("h2lab-csv-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn rows_round_trip_and_errors_name_line_and_column() {
        let rows = [
            Row {
                name: "a".into(),
                n: 1,
                opt: None,
            },
            Row {
                name: "b,c".into(),
                n: 2,
                opt: Some(0.5),
            },
        ];
        let text = to_string(&rows).unwrap();
        assert!(text.starts_with("name,n,opt\n"), "{text}");
        let path = file("good.csv", &text);
        assert_eq!(read::<Row>(&path, "name,n,opt", "a test").unwrap(), rows);

        let err = |text: &str| {
            let path = file("bad.csv", text);
            read::<Row>(&path, "name,n,opt", "a test CSV")
                .unwrap_err()
                .to_string()
        };
        assert!(err("").ends_with(":1: empty file"), "{}", err(""));
        assert!(err("x,y\n").contains(":1: header \"x,y\": not a test CSV"));
        assert!(err("name,n,opt\na,1\n").contains(":2: 2 columns, expected 3"));
        let bad_number = err("name,n,opt\na,1,\nb,x,\n");
        assert!(bad_number.contains(":3: n: "), "{bad_number}");
        let missing = read::<Row>(Path::new("/nonexistent/x.csv"), "", "").unwrap_err();
        assert!(missing
            .to_string()
            .starts_with("cannot read /nonexistent/x.csv"));
        // Comment lines (a bench CSV's machine block) are skipped.
        let commented = file("commented.csv", &format!("# a: b\n{text}"));
        assert_eq!(
            read::<Row>(&commented, "name,n,opt", "a test").unwrap(),
            rows
        );
        for name in ["good.csv", "bad.csv", "commented.csv"] {
            let _ = std::fs::remove_file(file(name, ""));
        }
    }
}
