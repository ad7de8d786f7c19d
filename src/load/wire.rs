//! A load agent's tally as one JSON line (`h2lab load --agent-start`, run
//! on a host by `--load-hosts`), and back: counts as they are, latency
//! histograms in HdrHistogram's V2 + DEFLATE form (base64), so that the
//! controller's merge is the merge of the very histograms the agents
//! recorded, count by count.

use std::collections::BTreeMap;
use std::time::Instant;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::tally::{PathTally, Schedule, Spread, Tally, TlsInfo};

/// What an agent sends back when its run ends.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct AgentResult {
    /// The agent's `seconds` (its measured time).
    pub seconds: f64,
    /// Its run was interrupted (a `stop` from the controller, or a signal).
    pub interrupted: bool,
    /// How long after the instant it was given it began, µs (its clock):
    /// a session that opened late starts late.
    pub late_us: f64,
    pub tally: TallyWire,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TallyWire {
    hist: String,
    succeeded: u64,
    failed: u64,
    connection_errors: u64,
    statuses: BTreeMap<u16, u64>,
    problems: BTreeMap<String, (u64, String)>,
    connect_us: [u128; 4],
    first_byte_us: [u128; 4],
    bytes_in: u64,
    bytes_out: u64,
    bytes_in_measured: u64,
    headers_in: u64,
    data_in: u64,
    header_blocks: u64,
    header_fields: u64,
    dated: u64,
    body_in: u64,
    retried: u64,
    reconnects: u64,
    per_client: Vec<u64>,
    tls: Option<(String, String, Option<String>)>,
    schedule: (u64, u64, u64),
    abandoned: u64,
    paths: Vec<PathWire>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PathWire {
    succeeded: u64,
    failed: u64,
    statuses: BTreeMap<u16, u64>,
    hist: String,
    body: u64,
}

/// A histogram in HdrHistogram's V2 + DEFLATE form, base64.
pub fn encode_hist(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("a histogram serializes into memory");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode_hist(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("a histogram's base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("a histogram: {e:?}"))
}

fn spread(s: &Spread) -> [u128; 4] {
    [u128::from(s.n), u128::from(s.min), u128::from(s.max), s.sum]
}

fn unspread(a: [u128; 4]) -> Spread {
    Spread {
        n: a[0] as u64,
        min: a[1] as u64,
        max: a[2] as u64,
        sum: a[3],
    }
}

impl TallyWire {
    pub fn of(t: &Tally) -> Self {
        TallyWire {
            hist: encode_hist(&t.hist),
            succeeded: t.succeeded,
            failed: t.failed,
            connection_errors: t.connection_errors,
            statuses: t.status_counts(),
            problems: t.problems.clone(),
            connect_us: spread(&t.connect_us),
            first_byte_us: spread(&t.first_byte_us),
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            bytes_in_measured: t.bytes_in_measured,
            headers_in: t.headers_in,
            data_in: t.data_in,
            header_blocks: t.header_blocks,
            header_fields: t.header_fields,
            dated: t.dated,
            body_in: t.body_in,
            retried: t.retried,
            reconnects: t.reconnects,
            per_client: t.per_client.clone(),
            tls: t
                .tls
                .as_ref()
                .map(|i| (i.version.clone(), i.cipher.clone(), i.alpn.clone())),
            schedule: (t.schedule.sent, t.schedule.unsent, t.schedule.max_lag_us),
            abandoned: t.abandoned,
            paths: t
                .paths
                .iter()
                .map(|p| PathWire {
                    succeeded: p.succeeded,
                    failed: p.failed,
                    statuses: p.statuses.clone(),
                    hist: encode_hist(&p.hist),
                    body: p.body,
                })
                .collect(),
        }
    }

    /// The tally again, counting from `from` (the controller's own).
    pub fn into_tally(self, from: Instant) -> Result<Tally, String> {
        let mut t = Tally::new(from, 0, 0);
        t.hist = decode_hist(&self.hist)?;
        t.succeeded = self.succeeded;
        t.failed = self.failed;
        t.connection_errors = self.connection_errors;
        for (s, n) in self.statuses {
            let slot = t
                .statuses
                .get_mut(usize::from(s))
                .ok_or_else(|| format!("status {s} out of range"))?;
            *slot = n;
        }
        t.problems = self.problems;
        t.connect_us = unspread(self.connect_us);
        t.first_byte_us = unspread(self.first_byte_us);
        t.bytes_in = self.bytes_in;
        t.bytes_out = self.bytes_out;
        t.bytes_in_measured = self.bytes_in_measured;
        t.headers_in = self.headers_in;
        t.data_in = self.data_in;
        t.header_blocks = self.header_blocks;
        t.header_fields = self.header_fields;
        t.dated = self.dated;
        t.body_in = self.body_in;
        t.retried = self.retried;
        t.reconnects = self.reconnects;
        t.per_client = self.per_client;
        t.tls = self.tls.map(|(version, cipher, alpn)| TlsInfo {
            version,
            cipher,
            alpn,
        });
        t.schedule = Schedule {
            sent: self.schedule.0,
            unsent: self.schedule.1,
            max_lag_us: self.schedule.2,
        };
        t.abandoned = self.abandoned;
        t.paths = self
            .paths
            .into_iter()
            .map(|p| {
                Ok(PathTally {
                    succeeded: p.succeeded,
                    failed: p.failed,
                    statuses: p.statuses,
                    hist: decode_hist(&p.hist)?,
                    body: p.body,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::client::Outcome;
    use std::time::Duration;

    fn tally(seed: u64, from: Instant) -> Tally {
        let mut t = Tally::new(from, 3, 2);
        for i in 0..500u64 {
            let us = (i * 7919 + seed * 104_729) % 90_000 + 1;
            let outcome = match i % 50 {
                0 => Outcome::Status(404),
                1 => Outcome::Refused,
                _ => Outcome::Status(200),
            };
            t.record(
                (i % 3) as usize,
                (i % 2) as usize,
                from,
                outcome,
                12,
                from + Duration::from_micros(us),
            );
        }
        t.connect_us.add(40 + seed);
        t.first_byte_us.add(90);
        t.bytes_in = 1000 + seed;
        t.tls = Some(TlsInfo {
            version: "TLSv1_3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
            alpn: Some("h2".into()),
        });
        t.schedule = Schedule {
            sent: 5,
            unsent: seed,
            max_lag_us: 7 * seed,
        };
        t
    }

    /// A tally sent and received is the same tally: every count, and the
    /// histograms value by value.
    #[test]
    fn a_tally_goes_through_the_wire_whole() {
        let from = Instant::now();
        let t = tally(1, from);
        let json = serde_json::to_string(&TallyWire::of(&t)).unwrap();
        let back: TallyWire = serde_json::from_str(&json).unwrap();
        let u = back.into_tally(from).unwrap();
        assert_eq!(u.hist, t.hist);
        assert_eq!(u.hist.len(), t.succeeded);
        assert_eq!(
            (u.succeeded, u.failed, u.connection_errors),
            (t.succeeded, t.failed, t.connection_errors)
        );
        assert_eq!(u.status_counts(), t.status_counts());
        assert_eq!(u.problems, t.problems);
        assert_eq!(u.connect_us, t.connect_us);
        assert_eq!(u.first_byte_us, t.first_byte_us);
        assert_eq!(u.bytes_in, t.bytes_in);
        assert_eq!(u.per_client, t.per_client);
        assert_eq!(u.tls, t.tls);
        assert_eq!(u.schedule, t.schedule);
        assert_eq!(u.paths.len(), 2);
        for (a, b) in u.paths.iter().zip(&t.paths) {
            assert_eq!(a.hist, b.hist);
            assert_eq!(
                (a.succeeded, a.failed, a.body),
                (b.succeeded, b.failed, b.body)
            );
            assert_eq!(a.statuses, b.statuses);
        }
    }

    /// Two agents' tallies merged after the wire equal one tally of every
    /// sample: the merge loses nothing.
    #[test]
    fn merged_after_the_wire_is_one_tally_of_every_sample() {
        let from = Instant::now();
        let (a, b) = (tally(1, from), tally(2, from));
        let mut whole = tally(1, from);
        whole.merge(tally(2, from));
        let mut merged = Tally::new(from, 0, 0);
        for t in [a, b] {
            let wire: TallyWire =
                serde_json::from_str(&serde_json::to_string(&TallyWire::of(&t)).unwrap()).unwrap();
            merged.merge(wire.into_tally(from).unwrap());
        }
        assert_eq!(merged.hist, whole.hist);
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(
                merged.hist.value_at_quantile(q),
                whole.hist.value_at_quantile(q)
            );
        }
        assert_eq!(merged.succeeded, whole.succeeded);
        assert_eq!(merged.failed, whole.failed);
        assert_eq!(merged.problems, whole.problems);
        assert_eq!(merged.per_client.len(), 6);
        assert_eq!(merged.schedule.max_lag_us, 14);
        assert_eq!(merged.paths[1].hist, whole.paths[1].hist);
    }

    #[test]
    fn a_broken_histogram_is_an_error() {
        assert!(decode_hist("!!").is_err());
        assert!(decode_hist("AAAA").is_err());
    }
}
