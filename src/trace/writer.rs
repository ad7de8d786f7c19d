//! The writer thread: records in, the CSV action log and the Chrome-trace
//! JSON out. All formatting and I/O of the trace happens here, off the hot
//! path.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::Receiver;

use super::layer::Shared;
use super::schema::{Flags, FrameFlags, Kind, Record, CSV_HEADER, NO_STATE};
use super::{TraceConfig, TraceError};

pub(super) enum Msg {
    Batch(Vec<Record>),
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
/// number of records written. Lines are built in reused byte buffers with
/// hand-rolled number formatting: `core::fmt` was most of the trace's cost.
pub(super) fn run(rx: Receiver<Msg>, mut files: Files, shared: &Shared) -> io::Result<u64> {
    writeln!(files.csv, "{CSV_HEADER}")?;
    files.json.write_all(
        b"{\"traceEvents\":[\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"h2lab\"}}",
    )?;
    let mut named = Vec::<u64>::new(); // bitmap of clients with a named track
    let (mut csv, mut json) = (Vec::with_capacity(1 << 16), Vec::with_capacity(1 << 16));
    let mut written = 0u64;
    let (mut dropped, mut unrecorded) = (0, 0);
    for msg in rx.iter() {
        match msg {
            Msg::Batch(batch) => {
                for r in &batch {
                    write_csv(&mut csv, r);
                    let (word, bit) = ((r.client / 64) as usize, r.client % 64);
                    if named.len() <= word {
                        named.resize(word + 1, 0);
                    }
                    if named[word] & (1 << bit) == 0 {
                        named[word] |= 1 << bit;
                        name_track(&mut json, r.client);
                    }
                    write_json(&mut json, r);
                }
                files.csv.write_all(&csv)?;
                files.json.write_all(&json)?;
                csv.clear();
                json.clear();
                written += batch.len() as u64;
                shared.recycle(batch);
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

/// Decimal digits of `n`.
fn num(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Nanoseconds as microseconds with three decimals, as Chrome traces want.
fn micros(out: &mut Vec<u8>, ns: u64) {
    num(out, ns / 1000);
    let r = (ns % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (r / 100) as u8,
        b'0' + (r / 10 % 10) as u8,
        b'0' + (r % 10) as u8,
    ]);
}

/// One named, sorted track per client.
fn name_track(out: &mut Vec<u8>, client: u64) {
    out.extend_from_slice(b",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":");
    num(out, client);
    out.extend_from_slice(b",\"args\":{\"name\":\"client ");
    num(out, client);
    out.extend_from_slice(
        b"\"}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":",
    );
    num(out, client);
    out.extend_from_slice(b",\"args\":{\"sort_index\":");
    num(out, client);
    out.extend_from_slice(b"}}");
}

fn write_csv(out: &mut Vec<u8>, r: &Record) {
    num(out, r.ts_ns);
    out.push(b',');
    num(out, r.dur_ns);
    out.push(b',');
    num(out, r.client);
    out.push(b',');
    out.extend_from_slice(r.kind.name().as_bytes());
    out.push(b',');
    out.extend_from_slice(r.name_str().as_bytes());
    out.push(b',');
    if let Some(f) = r.frame {
        num(out, f.stream.into());
    }
    out.push(b',');
    num(out, r.bytes);
    out.push(b',');
    write_state(out, r);
    out.push(b'\n');
}

fn write_state(out: &mut Vec<u8>, r: &Record) {
    match r.frame {
        Some(f) => FrameFlags {
            kind: f.kind,
            flags: f.flags,
        }
        .write_to(out),
        None if r.state != NO_STATE => {
            out.extend_from_slice(&Flags::from_bits(r.state as u16).letters())
        }
        None => {}
    }
}

fn write_json(out: &mut Vec<u8>, r: &Record) {
    out.extend_from_slice(b",\n{\"name\":\"");
    out.extend_from_slice(r.name_str().as_bytes());
    out.extend_from_slice(b"\",\"cat\":\"");
    out.extend_from_slice(r.kind.name().as_bytes());
    match (r.kind, r.frame) {
        (Kind::FrameIn | Kind::FrameOut, Some(f)) => {
            out.extend_from_slice(b"\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":");
            num(out, r.client);
            out.extend_from_slice(b",\"ts\":");
            micros(out, r.ts_ns);
            out.extend_from_slice(b",\"args\":{\"stream\":");
            num(out, f.stream.into());
            out.extend_from_slice(b",\"length\":");
            num(out, f.length.into());
            out.extend_from_slice(b",\"flags\":\"");
            write_state(out, r);
            out.extend_from_slice(b"\"}}");
        }
        _ => {
            out.extend_from_slice(b"\",\"ph\":\"X\",\"pid\":1,\"tid\":");
            num(out, r.client);
            out.extend_from_slice(b",\"ts\":");
            micros(out, r.ts_ns);
            out.extend_from_slice(b",\"dur\":");
            micros(out, r.dur_ns);
            out.extend_from_slice(b",\"args\":{\"bytes\":");
            num(out, r.bytes);
            if r.state != NO_STATE {
                out.extend_from_slice(b",\"state\":\"");
                write_state(out, r);
                out.push(b'"');
            }
            out.extend_from_slice(b"}}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameHeader, FrameType};
    use crate::trace::{CsvRow, Name};

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
        write_csv(&mut v, r);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn numbers_format_like_display() {
        for n in [0, 7, 10, 999, 1000, 123_456_789, u64::MAX] {
            let mut v = Vec::new();
            num(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
        }
        for (ns, text) in [
            (0, "0.000"),
            (999, "0.999"),
            (1_000, "1.000"),
            (1_234_567, "1234.567"),
            (5_005, "5.005"),
        ] {
            let mut v = Vec::new();
            micros(&mut v, ns);
            assert_eq!(String::from_utf8(v).unwrap(), text);
        }
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
    fn csv_rows_read_back_through_the_schema() {
        let mut text = format!("{CSV_HEADER}\n").into_bytes();
        write_csv(&mut text, &action());
        write_csv(&mut text, &frame());
        let rows: Vec<CsvRow> = csv::Reader::from_reader(text.as_slice())
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows[0].kind, Kind::Action);
        assert_eq!(
            (rows[0].name.as_str(), rows[0].stream, rows[0].bytes),
            ("read_socket", None, 42)
        );
        assert_eq!(rows[0].state, "r---t-----");
        assert_eq!((rows[1].kind, rows[1].stream), (Kind::FrameOut, Some(5)));
        assert!(rows[1].is_response());
        assert!(!rows[0].is_response());
    }

    #[test]
    fn json_events_are_complete_slices_and_instants_in_micros() {
        let mut v = Vec::new();
        write_json(&mut v, &action());
        write_json(&mut v, &frame());
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
