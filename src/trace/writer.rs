//! The writer thread: records in, the CSV action log and the Chrome-trace
//! JSON out. All formatting and I/O of the trace happens here, off the hot
//! path.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::Receiver;

use super::{FrameFlags, Kind, Record, TraceConfig, TraceError, NO_STATE};
use crate::server::poll::state::Flags;

/// The CSV header: the columns of DESIGN.md, in order.
pub const CSV_HEADER: &str = "ts_ns,dur_ns,client,kind,name,stream,bytes,state";

pub(super) enum Msg {
    Record(Record),
    Finish { dropped: u64, unrecorded: u64 },
}

pub(super) struct Files {
    csv: BufWriter<File>,
    json: BufWriter<File>,
}

impl Files {
    /// Creates both files (and their folder) now, so that a bad path is an
    /// error at start, not a trace silently missing at the end.
    pub(super) fn create(config: &TraceConfig) -> Result<Self, TraceError> {
        let open = |path: std::path::PathBuf| {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| TraceError::Create {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            File::create(&path)
                .map(|f| BufWriter::with_capacity(256 * 1024, f))
                .map_err(|source| TraceError::Create { path, source })
        };
        Ok(Self {
            csv: open(config.csv_path())?,
            json: open(config.json_path())?,
        })
    }
}

/// Writes until `Finish` (or until every sender is gone); returns the
/// number of records written.
pub(super) fn run(rx: Receiver<Msg>, mut files: Files) -> io::Result<u64> {
    writeln!(files.csv, "{CSV_HEADER}")?;
    files.json.write_all(
        b"{\"traceEvents\":[\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"h2lab\"}}",
    )?;
    let mut tracks = HashSet::new();
    let mut written = 0u64;
    let (mut dropped, mut unrecorded) = (0, 0);
    for msg in rx.iter() {
        match msg {
            Msg::Record(r) => {
                write_csv(&mut files.csv, &r)?;
                if tracks.insert(r.client) {
                    // One named track per client; sorted by client id.
                    write!(
                        files.json,
                        ",\n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":{c},\"args\":{{\"name\":\"client {c}\"}}}},\n{{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":{c},\"args\":{{\"sort_index\":{c}}}}}",
                        c = r.client
                    )?;
                }
                write_json(&mut files.json, &r)?;
                written += 1;
            }
            Msg::Finish {
                dropped: d,
                unrecorded: u,
            } => {
                (dropped, unrecorded) = (d, u);
                break;
            }
        }
    }
    write!(
        files.json,
        "\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{{\"generator\":\"h2lab {}\",\"records\":{written},\"dropped\":{dropped},\"unrecorded\":{unrecorded}}}\n}}\n",
        env!("CARGO_PKG_VERSION")
    )?;
    files.csv.flush()?;
    files.json.flush()?;
    files.csv.get_ref().sync_all()?;
    files.json.get_ref().sync_all()?;
    Ok(written)
}

fn write_csv(out: &mut impl Write, r: &Record) -> io::Result<()> {
    write!(
        out,
        "{},{},{},{},{},",
        r.ts_ns,
        r.dur_ns,
        r.client,
        r.kind.name(),
        r.name_str()
    )?;
    if let Some(f) = r.frame {
        write!(out, "{}", f.stream)?;
    }
    write!(out, ",{},", r.bytes)?;
    write_state(out, r)?;
    out.write_all(b"\n")
}

fn write_state(out: &mut impl Write, r: &Record) -> io::Result<()> {
    match r.frame {
        Some(f) => write!(
            out,
            "{}",
            FrameFlags {
                kind: f.kind,
                flags: f.flags
            }
        ),
        None if r.state != NO_STATE => write!(out, "{}", Flags::from_bits(r.state as u16)),
        None => Ok(()),
    }
}

/// Microseconds with nanosecond digits, as Chrome traces want them.
struct Micros(u64);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

fn write_json(out: &mut impl Write, r: &Record) -> io::Result<()> {
    let (ts, client, name, cat) = (Micros(r.ts_ns), r.client, r.name_str(), r.kind.name());
    match (r.kind, r.frame) {
        (Kind::FrameIn | Kind::FrameOut, Some(f)) => {
            write!(
                out,
                ",\n{{\"name\":\"{name}\",\"cat\":\"{cat}\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":{client},\"ts\":{ts},\"args\":{{\"stream\":{},\"length\":{},\"flags\":\"",
                f.stream, f.length
            )?;
            write_state(out, r)?;
            out.write_all(b"\"}}")
        }
        _ => {
            write!(
                out,
                ",\n{{\"name\":\"{name}\",\"cat\":\"{cat}\",\"ph\":\"X\",\"pid\":1,\"tid\":{client},\"ts\":{ts},\"dur\":{},\"args\":{{\"bytes\":{}",
                Micros(r.dur_ns),
                r.bytes
            )?;
            if r.state != NO_STATE {
                out.write_all(b",\"state\":\"")?;
                write_state(out, r)?;
                out.write_all(b"\"")?;
            }
            out.write_all(b"}}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameHeader, FrameType};
    use crate::trace::Name;

    fn action() -> Record {
        Record {
            ts_ns: 1_234_567,
            dur_ns: 2_500,
            client: 3,
            kind: Kind::Action,
            name: Some(Name::ReadSocket),
            frame: None,
            bytes: 42,
            state: Flags::CAN_READ.with(Flags::TLS_READY).bits() as u64,
        }
    }

    fn frame() -> Record {
        Record {
            ts_ns: 2_000_001,
            dur_ns: 0,
            client: 3,
            kind: Kind::FrameOut,
            name: None,
            frame: Some(FrameHeader {
                length: 12,
                kind: FrameType::DATA,
                flags: 1,
                stream: 5,
            }),
            bytes: 12,
            state: NO_STATE,
        }
    }

    fn csv(r: &Record) -> String {
        let mut v = Vec::new();
        write_csv(&mut v, r).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn csv_rows_have_the_eight_columns() {
        assert_eq!(
            csv(&action()),
            "1234567,2500,3,action,read_socket,,42,r---t-----\n"
        );
        assert_eq!(
            csv(&frame()),
            "2000001,0,3,frame-out,DATA,5,12,END_STREAM\n"
        );
        let no_state = Record {
            state: NO_STATE,
            ..action()
        };
        assert_eq!(csv(&no_state), "1234567,2500,3,action,read_socket,,42,\n");
    }

    #[test]
    fn json_events_are_complete_slices_and_instants_in_micros() {
        let mut v = Vec::new();
        write_json(&mut v, &action()).unwrap();
        write_json(&mut v, &frame()).unwrap();
        let text = String::from_utf8(v).unwrap();
        assert!(
            text.contains("\"ph\":\"X\",\"pid\":1,\"tid\":3,\"ts\":1234.567,\"dur\":2.500"),
            "{text}"
        );
        assert!(text.contains("\"state\":\"r---t-----\""), "{text}");
        assert!(
            text.contains("\"name\":\"DATA\",\"cat\":\"frame-out\",\"ph\":\"i\""),
            "{text}"
        );
        assert!(text.contains("\"ts\":2000.001"), "{text}");
    }
}
