//! `h2lab analyze`: where each request's time went, from a trace.
//!
//! Per action (count, own time, share of the serving threads' busy time,
//! ns per request, octets per call); the loop's time (busy, idle,
//! descheduled); each request's latency, from its `HEADERS` in to the end
//! of the `write_socket` that carried its answer, cut into components that
//! sum to it (the [`timeline`] rules); the clients' shares. What the trace
//! cannot tell comes first. The same figures, as Perfetto SQL, are in
//! `trace/sql/h2lab/` (docs/analyze.md).

pub mod command;
mod export;
mod timeline;
mod trace_file;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::trace::{Kind, Name};
pub use export::{Json, Markdown, Table};
use timeline::Track;
pub use trace_file::{TraceFile, TraceFileError};

/// What one trace says.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Analysis {
    /// The trace's prefix.
    pub trace: String,
    /// `dispatch/engine/tls`, as its metadata says (`?` without it).
    pub setup: String,
    /// What the trace cannot tell, in words: every output says it first.
    pub caveats: Vec<String>,
    /// Requests answered and written within the trace.
    pub requests: u64,
    pub clients: u64,
    /// From the first client's first record to the end of the last record.
    pub window_ns: u64,
    /// The serving threads' busy time: the poll loops' time less their
    /// waits where the dispatch records its waits, else the actions' own
    /// time.
    pub busy_ns: u64,
    pub busy_from: String,
    pub actions: Vec<Action>,
    pub loop_time: Option<LoopTime>,
    pub latency: Spread,
    /// In a fixed order (see [`COMPONENTS`]); they sum to the latency.
    pub components: Vec<Component>,
    pub per_client: Vec<Client>,
    /// Every request, in client then start order (`--requests FILE`).
    #[serde(skip)]
    pub each: Vec<EachRequest>,
}

/// One request: where it was and where its time went.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EachRequest {
    pub client: u64,
    pub stream: u32,
    /// Its `HEADERS` in, ns into the trace.
    pub start_ns: u64,
    pub latency_ns: u64,
    /// By [`COMPONENTS`]; they sum to the latency.
    pub components: [u64; COMPONENTS.len()],
}

/// One action name, over the whole trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Action {
    pub name: String,
    pub count: u64,
    pub per_request: f64,
    /// Inclusive: nested actions (an `engine` around its `work`) in both.
    pub total_ns: u64,
    /// Its own time: its slices less the slices inside them.
    pub self_ns: u64,
    /// Own time ÷ the serving threads' busy time.
    pub share_of_busy: f64,
    pub self_ns_per_request: f64,
    pub octets_per_call: f64,
}

/// The loops' time over the trace's window, summed over the loops.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LoopTime {
    pub loops: u64,
    /// The window times the loops.
    pub wall_ns: u64,
    /// Not waiting.
    pub busy_ns: u64,
    /// Waiting for events, less the run-queue delay.
    pub idle_ns: u64,
    /// Ready to run but not running (`runq_ns` of the waits).
    pub descheduled_ns: u64,
}

/// A distribution of times per request (ns; nearest-rank percentiles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Spread {
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

/// One component of the requests' latency.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Component {
    pub name: String,
    pub spread: Spread,
    /// Its mean ÷ the mean latency.
    pub share: f64,
}

/// One client: its requests and their latency.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Client {
    pub client: u64,
    pub requests: u64,
    pub latency: Spread,
}

/// The components of a request's latency, in order, and what each holds.
pub const COMPONENTS: [(&str, &str); 9] = [
    ("queued", "before its answer, outside its client's actions"),
    ("read", "read_socket"),
    ("decrypt", "decrypt, handshake"),
    ("engine", "engine, own time"),
    ("work", "work"),
    ("encrypt", "encrypt, move_encrypted"),
    ("wait_for_write", "answered, before the write"),
    ("write", "write_socket"),
    ("other", "accept, close"),
];
const QUEUED: usize = 0;
const WAIT_FOR_WRITE: usize = 6;

/// The component an action's time falls in.
fn component_of(action: &str) -> usize {
    let name = Name::ALL.into_iter().find(|n| n.as_str() == action);
    match name {
        Some(Name::ReadSocket) => 1,
        Some(Name::Handshake | Name::Decrypt) => 2,
        Some(Name::Engine) => 3,
        Some(Name::Work) => 4,
        Some(Name::Encrypt | Name::MoveEncrypted) => 5,
        Some(Name::WriteSocket) => 7,
        _ => 8,
    }
}

/// Nearest rank: the smallest value with at least `pct` per cent of them
/// at or below it (`sorted` ascending, not empty). In integers, as the SQL
/// package's `h2lab_rank` does, so that both pick the same value.
pub fn percentile(sorted: &[u64], pct: usize) -> u64 {
    let rank = (sorted.len() * pct).div_ceil(100);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Spread {
    fn of(mut v: Vec<u64>) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_unstable();
        Spread {
            p50_ns: percentile(&v, 50),
            p90_ns: percentile(&v, 90),
            p99_ns: percentile(&v, 99),
            max_ns: *v.last().expect("not empty"),
            mean_ns: v.iter().sum::<u64>() as f64 / v.len() as f64,
        }
    }
}

/// The number in `runq_ns=N`, a wait's state.
fn runq(state: &str) -> u64 {
    state
        .strip_prefix("runq_ns=")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Analyses one trace (its losses are the caller's to judge: they are
/// listed among the caveats).
pub fn analyze(file: &TraceFile) -> Analysis {
    let mut caveats = Vec::new();
    let prefix = file.prefix.display().to_string();
    match &file.meta {
        Err(e) => caveats.push(format!(
            "no metadata ({e}): cannot tell whether the trace lost records"
        )),
        Ok(_) => {
            if let Some(losses) = file.losses() {
                caveats.push(format!(
                    "the trace lost records ({losses}): its figures count only what it holds"
                ));
            }
        }
    }
    let meta = file.meta.as_ref().ok();

    // Each client's rows; the loop's waits aside.
    let mut by_client: BTreeMap<u64, Vec<&crate::trace::CsvRow>> = BTreeMap::new();
    let mut waits = Vec::new();
    let (mut first, mut last) = (u64::MAX, 0u64);
    for r in &file.rows {
        last = last.max(r.ts_ns.saturating_add(r.dur_ns));
        match r.kind {
            Kind::Loop => waits.push(r),
            _ if r.client == 0 => {}
            _ => {
                first = first.min(r.ts_ns);
                by_client.entry(r.client).or_default().push(r);
            }
        }
    }
    let window = (first.min(last), last);
    let window_ns = window.1 - window.0;

    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut name_of = |name: &str| -> usize {
        if let Some(&i) = index.get(name) {
            return i;
        }
        names.push(name.to_string());
        index.insert(name.to_string(), names.len() - 1);
        names.len() - 1
    };
    let write = name_of(Name::WriteSocket.as_str());
    let tracks: Vec<(u64, Track)> = by_client
        .iter()
        .map(|(&client, rows)| (client, Track::build(rows, &mut name_of, write)))
        .collect();

    // Per action: counts, octets, inclusive and own time.
    let mut count = vec![0u64; names.len()];
    let mut octets = vec![0u64; names.len()];
    let mut total = vec![0u64; names.len()];
    let mut own = vec![0u64; names.len()];
    for rows in by_client.values() {
        for r in rows
            .iter()
            .filter(|r| matches!(r.kind, Kind::Action | Kind::Conn))
        {
            let i = index[r.name.as_str()];
            count[i] += 1;
            octets[i] += r.bytes;
            total[i] += r.dur_ns;
        }
    }
    for (_, t) in &tracks {
        for s in &t.segments {
            own[t.slices[s.slice].name] += s.end - s.start;
        }
    }

    // The loops' time, where the dispatch records its waits.
    let loop_time = (!waits.is_empty()).then(|| {
        let loops = match meta {
            Some(m) if m.dispatch == "poll" => m.threads.max(1) as u64,
            _ => 1,
        };
        let (mut waited, mut delayed) = (0u64, 0u64);
        for w in &waits {
            let (s, e) = (
                w.ts_ns.max(window.0),
                w.ts_ns.saturating_add(w.dur_ns).min(window.1),
            );
            if e > s {
                waited += e - s;
                delayed += runq(&w.state);
            }
        }
        let wall_ns = window_ns * loops;
        let waited = waited.min(wall_ns);
        let descheduled_ns = delayed.min(waited);
        LoopTime {
            loops,
            wall_ns,
            busy_ns: wall_ns - waited,
            idle_ns: waited - descheduled_ns,
            descheduled_ns,
        }
    });
    let own_sum: u64 = own.iter().sum();
    let (busy_ns, busy_from) = match &loop_time {
        Some(l) => (
            l.busy_ns.max(own_sum),
            "the loops' time less their waits".to_string(),
        ),
        None => {
            caveats.push(
                "this dispatch records no waits: the loop's idle and descheduled time are unknown, and busy time is the actions' own".into(),
            );
            (own_sum, "the actions' own time".to_string())
        }
    };

    // Requests: latency and its components.
    let mut latencies = Vec::new();
    let mut parts: Vec<Vec<u64>> = vec![Vec::new(); COMPONENTS.len()];
    let component: Vec<usize> = names.iter().map(|n| component_of(n)).collect();
    let mut per_client = Vec::new();
    let mut each = Vec::new();
    let (mut unanswered, mut unwritten) = (0, 0);
    let mut by_name = vec![0u64; names.len()];
    for (client, t) in &tracks {
        unanswered += t.unanswered;
        unwritten += t.unwritten;
        let mut mine = Vec::with_capacity(t.requests.len());
        for r in &t.requests {
            by_name.iter_mut().for_each(|x| *x = 0);
            let mut split = [0u64; COMPONENTS.len()];
            split[QUEUED] = t.spent(r.start, r.answered, &mut by_name);
            split[WAIT_FOR_WRITE] = t.spent(r.answered, r.end, &mut by_name);
            for (name, &ns) in by_name.iter().enumerate() {
                split[component[name]] += ns;
            }
            for (k, ns) in split.into_iter().enumerate() {
                parts[k].push(ns);
            }
            mine.push(r.end - r.start);
            each.push(EachRequest {
                client: *client,
                stream: r.stream,
                start_ns: r.start,
                latency_ns: r.end - r.start,
                components: split,
            });
        }
        latencies.extend_from_slice(&mine);
        per_client.push(Client {
            client: *client,
            requests: mine.len() as u64,
            latency: Spread::of(mine),
        });
    }
    let requests = latencies.len() as u64;
    if unanswered > 0 {
        caveats.push(format!(
            "{unanswered} requests had no answer when the trace ended: not counted"
        ));
    }
    if unwritten > 0 {
        caveats.push(format!(
            "{unwritten} answers were not seen written when the trace ended: not counted"
        ));
    }
    if let Some(said) = meta.and_then(|m| m.responses) {
        if said != requests {
            caveats.push(format!(
                "the server said it sent {said} responses; the trace holds {requests}"
            ));
        }
    }
    if requests == 0 {
        caveats.push("no request was answered and written: no per-request figures".into());
    }
    let latency = Spread::of(latencies);
    let components = COMPONENTS
        .iter()
        .zip(parts)
        .map(|((name, _), v)| {
            let spread = Spread::of(v);
            Component {
                name: name.to_string(),
                share: match latency.mean_ns {
                    m if m > 0.0 => spread.mean_ns / m,
                    _ => 0.0,
                },
                spread,
            }
        })
        .collect();
    let per_req = |x: f64| {
        if requests > 0 {
            x / requests as f64
        } else {
            0.0
        }
    };
    let mut actions: Vec<Action> = names
        .iter()
        .enumerate()
        .filter(|&(i, _)| count[i] > 0)
        .map(|(i, name)| Action {
            name: name.clone(),
            count: count[i],
            per_request: per_req(count[i] as f64),
            total_ns: total[i],
            self_ns: own[i],
            share_of_busy: own[i] as f64 / busy_ns.max(1) as f64,
            self_ns_per_request: per_req(own[i] as f64),
            octets_per_call: octets[i] as f64 / count[i] as f64,
        })
        .collect();
    // The trace's order of actions (the vocabulary's), then any other.
    actions.sort_by_key(|a| {
        Name::ALL
            .iter()
            .position(|n| n.as_str() == a.name)
            .unwrap_or(usize::MAX)
    });
    if loop_time.is_some() && busy_ns > own_sum {
        let rest = busy_ns - own_sum;
        actions.push(Action {
            name: "(loop, outside actions)".into(),
            self_ns: rest,
            total_ns: rest,
            share_of_busy: rest as f64 / busy_ns as f64,
            self_ns_per_request: per_req(rest as f64),
            ..Action::default()
        });
    }
    Analysis {
        trace: prefix,
        setup: meta.map_or_else(|| "?".to_string(), |m| m.setup.clone()),
        caveats,
        requests,
        clients: tracks.len() as u64,
        window_ns,
        busy_ns,
        busy_from,
        actions,
        loop_time,
        latency,
        components,
        per_client,
        each,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&v, 100), 100);
        assert_eq!(percentile(&[7], 50), 7);
        assert_eq!(percentile(&[1, 2, 3], 50), 2);
        // 29% of 100 is 29 exactly (as a float product, 28.999…).
        assert_eq!(percentile(&v, 29), 29);
    }

    #[test]
    fn every_action_has_a_component() {
        for name in Name::ALL {
            let k = component_of(name.as_str());
            assert!(k != QUEUED && k != WAIT_FOR_WRITE, "{name}");
        }
        assert_eq!(component_of("work"), 4);
        assert_eq!(component_of("something new"), 8);
    }
}
