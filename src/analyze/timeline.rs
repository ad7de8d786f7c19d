//! One client's track, as the trace holds it: its slices (actions and
//! connection events), cut into segments that each belong to the
//! innermost slice running then, its socket writes, and its requests, each
//! from the `HEADERS` that opened it to the end of the `write_socket` that
//! carried its answer.
//!
//! The rules are the trace's own (docs/tracing.md): a request's answer is
//! the frame out that ends its stream, and the write that carried it is
//! the client's first `write_socket` that ends at or after that frame
//! (frames are stamped inside the slice that made them: the `engine`, the
//! `encrypt` that saw them, or, for h2c under the `h2` engine, the write
//! itself). The JSON trace's flow arrows follow the same rule.

use crate::trace::{CsvRow, Kind};

/// A slice of the client's track: `[start, end)` in trace ns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slice {
    pub start: u64,
    pub end: u64,
    /// An index into the analysis's names.
    pub name: usize,
}

/// A stretch of the track during which one slice was the innermost one
/// running: the partition of the track's busy time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    /// An index into the slices.
    pub slice: usize,
}

/// One request, answered and written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    pub stream: u32,
    /// Its `HEADERS` in.
    pub start: u64,
    /// The frame out that ended its stream.
    pub answered: u64,
    /// The end of the write that carried it.
    pub end: u64,
}

/// What one client's track holds.
#[derive(Debug, Default)]
pub struct Track {
    pub slices: Vec<Slice>,
    pub segments: Vec<Segment>,
    pub requests: Vec<Request>,
    /// Requests whose stream was never ended (the trace stopped first).
    pub unanswered: u64,
    /// Answers no write carried within the trace.
    pub unwritten: u64,
}

impl Track {
    /// The track of one client from its rows (any order); `name_of` gives
    /// an action's name its index, `write` is the index of `write_socket`.
    pub fn build(rows: &[&CsvRow], mut name_of: impl FnMut(&str) -> usize, write: usize) -> Track {
        let mut track = Track::default();
        let mut frames: Vec<&CsvRow> = Vec::new();
        for r in rows {
            match r.kind {
                Kind::Action | Kind::Conn => track.slices.push(Slice {
                    start: r.ts_ns,
                    end: r.ts_ns.saturating_add(r.dur_ns),
                    name: name_of(&r.name),
                }),
                Kind::FrameIn | Kind::FrameOut => frames.push(r),
                Kind::Loop => {}
            }
        }
        // Outer slices first where two start together.
        track
            .slices
            .sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        track.segments = segments(&track.slices);
        let writes: Vec<&Slice> = track.slices.iter().filter(|s| s.name == write).collect();
        // Frames in time order; frames of one instant keep the log's order.
        frames.sort_by_key(|r| r.ts_ns);
        let mut open = std::collections::HashMap::new();
        for f in frames {
            let stream = f.stream.unwrap_or(0);
            match f.kind {
                Kind::FrameIn if f.name == "HEADERS" && stream != 0 => {
                    open.entry(stream).or_insert(f.ts_ns);
                }
                Kind::FrameOut if f.is_response() => {
                    let Some(start) = open.remove(&stream) else {
                        continue;
                    };
                    let answered = f.ts_ns;
                    let i = writes.partition_point(|w| w.end < answered);
                    match writes.get(i) {
                        Some(w) => track.requests.push(Request {
                            stream,
                            start,
                            answered,
                            end: w.end,
                        }),
                        None => track.unwritten += 1,
                    }
                }
                _ => {}
            }
        }
        track.unanswered = open.len() as u64;
        track
    }

    /// Time in `[from, to)` by the slice that was innermost, added into
    /// `into` by the slice's name; returns the time no slice ran.
    pub fn spent(&self, from: u64, to: u64, into: &mut [u64]) -> u64 {
        let mut busy = 0;
        let first = self.segments.partition_point(|s| s.end <= from);
        for s in self.segments[first..].iter().take_while(|s| s.start < to) {
            let overlap = s.end.min(to).saturating_sub(s.start.max(from));
            into[self.slices[s.slice].name] += overlap;
            busy += overlap;
        }
        to.saturating_sub(from) - busy
    }
}

/// Cuts slices (sorted by start) into segments, each owned by the
/// innermost slice running then: the one that started last (of two that
/// started together, the one that ends first). Properly nested slices (an
/// `engine` around its `work`, the `h2` engine around its reads and
/// writes) give each slice its self time; slices that overlap without
/// nesting (work offloaded to another thread) give the later one the
/// overlap. No instant is counted twice.
pub fn segments(slices: &[Slice]) -> Vec<Segment> {
    let mut bounds: Vec<(u64, bool, usize)> = Vec::with_capacity(slices.len() * 2);
    for (i, s) in slices.iter().enumerate().filter(|(_, s)| s.end > s.start) {
        bounds.push((s.start, true, i));
        bounds.push((s.end, false, i));
    }
    bounds.sort_unstable_by_key(|b| b.0);
    let mut out: Vec<Segment> = Vec::new();
    let mut active: Vec<usize> = Vec::new();
    let mut at = 0;
    for (ts, opens, i) in bounds {
        if ts > at {
            let inner = active.iter().copied().max_by(|&a, &b| {
                let (a, b) = (&slices[a], &slices[b]);
                a.start.cmp(&b.start).then(b.end.cmp(&a.end))
            });
            if let Some(slice) = inner {
                match out.last_mut() {
                    Some(last) if last.slice == slice && last.end == at => last.end = ts,
                    _ => out.push(Segment {
                        start: at,
                        end: ts,
                        slice,
                    }),
                }
            }
            at = ts;
        }
        if opens {
            active.push(i);
        } else if let Some(k) = active.iter().position(|&a| a == i) {
            active.swap_remove(k);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(start: u64, end: u64, name: usize) -> Slice {
        Slice { start, end, name }
    }

    fn self_times(slices: &[Slice]) -> Vec<u64> {
        let mut times = vec![0; slices.len()];
        for s in segments(slices) {
            times[s.slice] += s.end - s.start;
        }
        times
    }

    /// One row of a client's log.
    fn row(kind: Kind, ts_ns: u64, dur_ns: u64, name: &str, stream: u32, state: &str) -> CsvRow {
        CsvRow {
            ts_ns,
            dur_ns,
            client: 1,
            kind,
            name: name.into(),
            stream: (kind == Kind::FrameIn || kind == Kind::FrameOut).then_some(stream),
            bytes: 0,
            state: state.into(),
        }
    }

    /// The trace's rules (docs/tracing.md), row by row: a request opens at
    /// its first HEADERS in on a non-zero stream, is answered by the first
    /// frame out that ends its stream (DATA or HEADERS with END_STREAM),
    /// and ends with the first write that ends at or after that frame.
    #[test]
    fn a_track_is_built_by_the_traces_rules() {
        use Kind::*;
        let rows = [
            row(Action, 65, 5, "write_socket", 0, ""),
            row(Conn, 0, 100, "conn", 0, ""),
            row(Conn, 0, 5, "accept", 0, ""),
            row(Loop, 0, 200, "poll_wait", 0, ""),
            row(Action, 10, 10, "read_socket", 0, ""),
            row(FrameIn, 12, 0, "HEADERS", 1, "END_STREAM|END_HEADERS"),
            row(FrameIn, 13, 0, "HEADERS", 3, "END_HEADERS"),
            row(FrameIn, 13, 0, "HEADERS", 0, "END_HEADERS"),
            row(FrameIn, 14, 0, "DATA", 5, "END_STREAM"),
            row(FrameIn, 14, 0, "DATA", 3, "END_STREAM"),
            row(FrameIn, 16, 0, "HEADERS", 1, "END_STREAM|END_HEADERS"),
            row(Action, 20, 10, "engine", 0, ""),
            row(FrameOut, 21, 0, "HEADERS", 1, "END_HEADERS"),
            row(FrameOut, 22, 0, "DATA", 1, "END_STREAM"),
            row(FrameOut, 23, 0, "DATA", 1, "END_STREAM"),
            row(FrameOut, 24, 0, "HEADERS", 3, "END_STREAM|END_HEADERS"),
            row(FrameOut, 25, 0, "DATA", 9, "END_STREAM"),
            row(FrameOut, 26, 0, "PING", 0, "ACK"),
            row(Action, 30, 10, "write_socket", 0, ""),
            row(FrameIn, 41, 0, "HEADERS", 7, "END_STREAM|END_HEADERS"),
            row(FrameOut, 45, 0, "DATA", 7, "END_STREAM"),
            row(Action, 50, 10, "write_socket", 0, ""),
            row(FrameIn, 63, 0, "HEADERS", 13, "END_STREAM|END_HEADERS"),
            row(FrameIn, 64, 0, "HEADERS", 15, "END_STREAM|END_HEADERS"),
            row(FrameOut, 70, 0, "DATA", 15, "END_STREAM"),
            row(FrameIn, 71, 0, "HEADERS", 11, "END_STREAM|END_HEADERS"),
            row(FrameOut, 72, 0, "DATA", 11, "END_STREAM"),
        ];
        let refs: Vec<&CsvRow> = rows.iter().collect();
        let mut names: Vec<String> = Vec::new();
        let mut name_of = |n: &str| match names.iter().position(|x| x == n) {
            Some(i) => i,
            None => {
                names.push(n.to_string());
                names.len() - 1
            }
        };
        let write = name_of("write_socket");
        let track = Track::build(&refs, &mut name_of, write);
        let request = |stream, start, answered, end| Request {
            stream,
            start,
            answered,
            end,
        };
        assert_eq!(
            track.requests,
            [
                request(1, 12, 22, 40),
                request(3, 13, 24, 40),
                request(7, 41, 45, 60),
                request(15, 64, 70, 70),
            ]
        );
        assert_eq!((track.unanswered, track.unwritten), (1, 1));
        // Slices from actions and connection events only, by start, the
        // outer first where two start together; the segments cover them.
        let (conn, accept) = (name_of("conn"), name_of("accept"));
        let spans: Vec<(u64, u64, usize)> = track
            .slices
            .iter()
            .map(|s| (s.start, s.end, s.name))
            .collect();
        assert_eq!(
            spans,
            [
                (0, 100, conn),
                (0, 5, accept),
                (10, 20, name_of("read_socket")),
                (20, 30, name_of("engine")),
                (30, 40, write),
                (50, 60, write),
                (65, 70, write),
            ]
        );
        assert_eq!(track.segments, segments(&track.slices));
        assert_eq!(names.len(), 5, "no name for the loop's row: {names:?}");
    }

    #[test]
    fn nested_slices_get_their_self_time() {
        // An engine (0–100) around a read (10–20) and a work (30–80) with
        // a write inside the work (40–50); then a lone write.
        let slices = [
            slice(0, 100, 0),
            slice(10, 20, 1),
            slice(30, 80, 2),
            slice(40, 50, 3),
            slice(120, 130, 3),
        ];
        assert_eq!(self_times(&slices), vec![40, 10, 40, 10, 10]);
        let total: u64 = self_times(&slices).iter().sum();
        assert_eq!(total, 110);
    }

    /// The segments themselves: no empty one where two bounds meet, and
    /// one stretch where the innermost slice stays the innermost across
    /// another slice's end.
    #[test]
    fn segments_are_whole_stretches() {
        let seg = |start, end, slice| Segment { start, end, slice };
        let nested = [slice(0, 100, 0), slice(10, 20, 1), slice(10, 15, 2)];
        assert_eq!(
            segments(&nested),
            [
                seg(0, 10, 0),
                seg(10, 15, 2),
                seg(15, 20, 1),
                seg(20, 100, 0)
            ]
        );
        let overlapping = [slice(0, 50, 0), slice(30, 80, 1)];
        assert_eq!(segments(&overlapping), [seg(0, 30, 0), seg(30, 80, 1)]);
    }

    /// Empty slices (an action that took no measurable time) own no time,
    /// however the sort orders their two bounds among many at one instant.
    #[test]
    fn empty_slices_own_nothing() {
        let mut slices = vec![slice(0, 1000, 0)];
        slices.extend((0..300).map(|i| slice(10 + 3 * (i % 7), 10 + 3 * (i % 7), 1)));
        slices.extend((0..300).map(|i| slice(500 + i % 5, 500 + i % 5, 2)));
        let times = self_times(&slices);
        assert_eq!(times[0], 1000);
        assert!(times[1..].iter().all(|&t| t == 0), "{:?}", &times[..10]);
    }

    #[test]
    fn overlapping_slices_count_each_instant_once() {
        // 0–50 and 30–80 overlap without nesting: the later owns 30–80.
        let slices = [slice(0, 50, 0), slice(30, 80, 1), slice(60, 60, 2)];
        assert_eq!(self_times(&slices), vec![30, 50, 0]);
    }

    #[test]
    fn time_spent_in_a_window_is_split_by_name_and_the_rest_is_waiting() {
        let track = Track {
            slices: vec![slice(0, 100, 0), slice(10, 20, 1), slice(150, 200, 1)],
            ..Track::default()
        };
        let track = Track {
            segments: segments(&track.slices),
            ..track
        };
        let mut by_name = [0; 2];
        let waited = track.spent(15, 160, &mut by_name);
        assert_eq!(by_name, [80, 15]);
        assert_eq!(waited, 50);
        assert_eq!(waited + by_name.iter().sum::<u64>(), 160 - 15);
    }
}
