//! The CSV action log's lines (the columns of [`crate::trace::CSV_HEADER`]).

use super::digits::num;
use crate::trace::schema::{Flags, FrameFlags, Kind, Record, NO_STATE};

pub(super) fn write_csv(out: &mut Vec<u8>, r: &Record) {
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

pub(super) fn write_state(out: &mut Vec<u8>, r: &Record) {
    match r.frame {
        Some(f) => FrameFlags {
            kind: f.kind,
            flags: f.flags,
        }
        .write_to(out),
        None if r.state == NO_STATE => {}
        // The loop's wait: the time it was runnable but not running.
        None if r.kind == Kind::Loop => {
            out.extend_from_slice(b"runq_ns=");
            num(out, r.state);
        }
        None => out.extend_from_slice(&Flags::from_bits(r.state as u16).letters()),
    }
}
