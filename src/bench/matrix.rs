//! What a bench runs: targets (our setups and peer servers) × clients ×
//! pipeline depth, in a stable order.

use std::fmt;

use clap::ValueEnum;
use serde::Serialize;

use super::peers::Peer;
use super::BenchConfig;
use crate::engine::{Body, Handler, Work};
use crate::netns::link::Link;
use crate::netns::Topology;
use crate::server::{Dispatch, Engine, Setup};
use crate::tls::TlsProvider;

/// What a cell measures: one of our setups, or a peer server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    H2lab(Setup),
    /// A peer with TLS (its own OpenSSL) or h2c.
    Peer {
        peer: Peer,
        tls: bool,
    },
}

impl Target {
    /// The (dispatch, engine, tls) columns; a peer is `NAME,peer,openssl|none`.
    pub fn columns(&self) -> [String; 3] {
        match self {
            Target::H2lab(s) => [
                s.dispatch.to_string(),
                s.engine.to_string(),
                s.tls.name().into(),
            ],
            Target::Peer { peer, tls } => [
                peer.name().into(),
                "peer".into(),
                if *tls { "openssl" } else { "none" }.into(),
            ],
        }
    }

    /// The target that [`Target::columns`] describes.
    pub fn from_columns(dispatch: &str, engine: &str, tls: &str) -> Result<Target, String> {
        let tls_provider = TlsProvider::from_str(tls, false)
            .map_err(|_| format!("unknown TLS provider {tls:?}"))?;
        if engine == "peer" {
            let peer = Peer::from_str(dispatch, false)
                .map_err(|_| format!("unknown peer {dispatch:?}"))?;
            return Ok(Target::Peer {
                peer,
                tls: tls_provider.is_tls(),
            });
        }
        Ok(Target::H2lab(Setup {
            dispatch: Dispatch::from_str(dispatch, false)
                .map_err(|_| format!("unknown dispatch {dispatch:?}"))?,
            engine: Engine::from_str(engine, false)
                .map_err(|_| format!("unknown engine {engine:?}"))?,
            tls: tls_provider,
        }))
    }

    /// `poll/mini`, `h2o/peer`: the server without its TLS provider.
    pub fn server_name(&self) -> String {
        let [a, b, _] = self.columns();
        format!("{a}/{b}")
    }

    pub fn is_tls(&self) -> bool {
        match self {
            Target::H2lab(s) => s.tls.is_tls(),
            Target::Peer { tls, .. } => *tls,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.columns();
        write!(f, "{a}/{b}/{c}")
    }
}

/// One cell of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "CellColumns")]
pub struct Cell {
    pub target: Target,
    pub clients: usize,
    pub pipeline: usize,
    /// `bench --threads`: the server's threads (tokio workers, poll
    /// reactors, the peer's workers); 0: the server's default (one).
    pub threads: usize,
    /// The server records a trace (`bench --trace-cost`; ours only).
    pub traced: bool,
    /// `bench --work`: each request's work (ours only).
    pub work: Work,
    /// `bench --body`: each response's body (a peer serves it as a file).
    pub body: Body,
    /// `bench --offload`: worker threads for the work (poll and tokio
    /// with `cpu:` or `sleep:` work only; 0: none).
    pub offload: usize,
    /// `bench --source`: how our server reads and answers (ours only).
    pub source: Source,
    /// `bench --mix`: the paths the load asks for, with weights
    /// (`/@99+/cpu/1ms@1`); `None`: `/` alone. Ours only.
    pub mix: Option<Mix>,
    /// `--net`: how the server and the load are joined (the whole run's).
    pub net: Topology,
    /// `--link`: the veth pair's shape (the whole run's; `None`: none).
    pub link: Option<&'static Link>,
    /// `--load-hosts`: the hosts the load ran from (`a,b`; the whole
    /// run's; `None`: here).
    pub load_hosts: Option<&'static str>,
    /// `--server-host`: the host the server ran on (the whole run's;
    /// `None`: here).
    pub server_host: Option<&'static str>,
}

/// A request mix (`bench --mix`): paths joined by `+`, each `PATH` or
/// `PATH@WEIGHT`, as `h2lab load` takes URLs. Interned, so that a cell
/// stays `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mix(&'static str);

impl Mix {
    /// Checks `spec` (every path starts with `/`, every weight is a
    /// whole number from 1) and interns it.
    pub fn parse(spec: &str) -> Result<Mix, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err("an empty mix".into());
        }
        for part in spec.split('+') {
            let path = match part.rsplit_once('@') {
                Some((p, w)) if !w.is_empty() && w.bytes().all(|c| c.is_ascii_digit()) => {
                    match w.parse::<u32>() {
                        Ok(n) if n >= 1 => p,
                        _ => {
                            return Err(format!(
                                "weight {w} in the mix '{spec}': a whole number from 1"
                            ))
                        }
                    }
                }
                _ => part,
            };
            if !path.starts_with('/') || path.contains(char::is_whitespace) {
                return Err(format!(
                    "'{part}' in the mix '{spec}' is not PATH or PATH@WEIGHT"
                ));
            }
        }
        Ok(Mix(intern(spec)))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// The URLs of the mix on the server at `base` (`http://h:p/`), each
    /// with its weight (`URL@W`, as `h2lab load` takes them).
    pub fn urls(self, base: &str) -> Vec<String> {
        let base = base.trim_end_matches('/');
        self.0.split('+').map(|p| format!("{base}{p}")).collect()
    }
}

/// One `&'static str` per distinct mix, for the life of the process (a
/// bench, or a report of one, has a few).
/// `link`, kept for the process's life (a bench has one).
pub fn intern_link(link: Link) -> &'static Link {
    static SEEN: std::sync::Mutex<Vec<&'static Link>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&known) = seen.iter().find(|&&k| *k == link) {
        return known;
    }
    let leaked: &'static Link = Box::leak(Box::new(link));
    seen.push(leaked);
    leaked
}

pub fn intern(s: &str) -> &'static str {
    static SEEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&known) = seen.iter().find(|&&k| k == s) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    seen.push(leaked);
    leaked
}

/// How our server reads a request and where its body comes from
/// (`bench --source`), so that a row says what work it did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Every request read (HPACK, checks, route), the body from memory.
    #[default]
    Reading,
    /// The seed's engine: nothing read, every request answered as `/`
    /// (`serve --blind`; the mini engine only).
    Blind,
    /// Every request read, the body read from a file per request, as a
    /// peer's file handler does (`serve --body-file`).
    File,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Reading => "reading",
            Source::Blind => "blind",
            Source::File => "file",
        }
    }

    pub fn parse(s: &str) -> Result<Source, String> {
        match s {
            "reading" => Ok(Source::Reading),
            "blind" => Ok(Source::Blind),
            "file" => Ok(Source::File),
            other => Err(format!("'{other}' is not a source (reading, blind, file)")),
        }
    }
}

impl Cell {
    /// What the cell's server does for each request (the file of
    /// `Source::File` is the bench's to write: see `child`).
    pub fn handler(&self) -> Handler {
        Handler {
            work: self.work,
            body: self.body,
            blind: self.source == Source::Blind,
            ..Handler::default()
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let traced = if self.traced { " +trace" } else { "" };
        match self.threads {
            0 => write!(f, "{}{traced}", self.target)?,
            n => write!(f, "{} ×{n}{traced}", self.target)?,
        }
        if self.body != Body::default() {
            write!(f, " body={}", self.body)?;
        }
        match self.work {
            Work::None => {}
            work => write!(f, " {work}")?,
        }
        if self.offload > 0 {
            write!(f, " offload={}", self.offload)?;
        }
        if self.source != Source::Reading {
            write!(f, " {}", self.source.name())?;
        }
        if let Some(m) = self.mix {
            write!(f, " mix={}", m.as_str())?;
        }
        if self.net != Topology::Loopback {
            write!(f, " net={}", self.net)?;
        }
        if let Some(link) = self.link {
            write!(f, " link={link}")?;
        }
        if let Some(hosts) = self.load_hosts {
            write!(f, " load={hosts}")?;
        }
        match self.server_host {
            Some(host) => write!(f, " server={host}"),
            None => Ok(()),
        }
    }
}

/// How a cell is written out (JSON).
#[derive(Serialize)]
struct CellColumns {
    dispatch: String,
    engine: String,
    tls: String,
    clients: usize,
    pipeline: usize,
    threads: usize,
    traced: bool,
    work: String,
    body: String,
    offload: usize,
    source: Source,
    mix: Option<String>,
    net: Topology,
    link: Option<String>,
    load_hosts: Option<String>,
    server_host: Option<String>,
}

impl From<Cell> for CellColumns {
    fn from(c: Cell) -> Self {
        let [dispatch, engine, tls] = c.target.columns();
        Self {
            dispatch,
            engine,
            tls,
            clients: c.clients,
            pipeline: c.pipeline,
            threads: c.threads,
            traced: c.traced,
            work: c.work.to_string(),
            body: c.body.to_string(),
            offload: c.offload,
            source: c.source,
            mix: c.mix.map(|m| m.as_str().to_string()),
            net: c.net,
            link: c.link.map(|l| l.to_string()),
            load_hosts: c.load_hosts.map(str::to_string),
            server_host: c.server_host.map(str::to_string),
        }
    }
}

impl BenchConfig {
    /// The run's load hosts (`a,b`), interned.
    fn load_hosts(&self) -> Option<&'static str> {
        let hosts = self.hosts.as_ref()?;
        let names: Vec<String> = hosts.hosts.iter().map(|h| h.to_string()).collect();
        Some(intern(&names.join(",")))
    }

    /// The run's link, interned (once a bench), so that a cell stays small.
    fn link(&self) -> Option<&'static Link> {
        let link = self.net.spec().link;
        link.is_shaped().then(|| intern_link(link))
    }

    /// Every target × body × threads × work × offload × clients ×
    /// pipeline, targets in the order given; offload only on poll and
    /// tokio with `cpu:` or `sleep:` work (`--offload 0,8` compares); threads only where a server has them (tokio,
    /// poll, peers), work only on ours (a peer serves a file: its cells run
    /// once, without work); with `trace_cost`, each of our setups untraced
    /// and then traced.
    pub fn cells(&self) -> Vec<Cell> {
        let targets = self.setups.iter().map(|&s| Target::H2lab(s)).chain(
            self.peers
                .iter()
                .map(|&(peer, tls)| Target::Peer { peer, tls }),
        );
        let mut cells = Vec::new();
        for target in targets {
            let tracing: &[bool] = match (self.trace_cost, target) {
                (true, Target::H2lab(_)) => &[false, true],
                _ => &[false],
            };
            let threads: &[usize] = match target {
                _ if self.threads.is_empty() => &[0],
                Target::H2lab(s)
                    if !(s.dispatch.is_state_machine() || s.dispatch == Dispatch::Tokio) =>
                {
                    &[0]
                }
                _ => &self.threads,
            };
            let work: &[Work] = match target {
                Target::H2lab(_) if !self.work.is_empty() => &self.work,
                _ => &[Work::None],
            };
            let bodies: &[Body] = match self.bodies.is_empty() {
                true => &[Body::SEED],
                false => &self.bodies,
            };
            // Blind is the mini engine's; a peer has its own ways.
            let sources: Vec<Source> = match target {
                Target::H2lab(s) => self
                    .sources
                    .iter()
                    .copied()
                    .filter(|&src| src != Source::Blind || s.engine == crate::server::Engine::Mini)
                    .collect(),
                Target::Peer { .. } => vec![Source::Reading],
            };
            // A mix is ours: a peer serves one file, at `/`.
            let mixes: Vec<Option<Mix>> = match target {
                Target::H2lab(_) if !self.mixes.is_empty() => {
                    self.mixes.iter().map(|&m| Some(m)).collect()
                }
                _ => vec![None],
            };
            let variants: Vec<(Source, Option<Mix>)> = sources
                .iter()
                .flat_map(|&s| mixes.iter().map(move |&m| (s, m)))
                .collect();
            for &(source, mix) in &variants {
                for &body in bodies {
                    for &threads in threads {
                        for &work in work {
                            for offload in self.offloads(target, work) {
                                for &clients in &self.clients {
                                    for &pipeline in &self.pipelines {
                                        for &traced in tracing {
                                            cells.push(Cell {
                                                target,
                                                clients,
                                                pipeline,
                                                threads,
                                                traced,
                                                work,
                                                body,
                                                offload,
                                                source,
                                                mix,
                                                net: self.net.spec().topology,
                                                link: self.link(),
                                                load_hosts: self.load_hosts(),
                                                server_host: self
                                                    .server
                                                    .as_ref()
                                                    .map(|s| intern(&s.hosts[0].to_string())),
                                            });
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        cells
    }

    /// `--offload` where it means something: poll and tokio, with work that
    /// holds a thread; elsewhere the cell runs once, without.
    fn offloads(&self, target: Target, work: Work) -> Vec<usize> {
        match target {
            Target::H2lab(s)
                if (s.dispatch.is_state_machine() || s.dispatch == Dispatch::Tokio)
                    && work.holds_a_thread()
                    && !self.offload.is_empty() =>
            {
                self.offload.clone()
            }
            _ => vec![0],
        }
    }
}

/// The supported setups among dispatch × engine × TLS, each once; the
/// others are returned apart, for a note.
pub fn setups(
    dispatches: &[Dispatch],
    engines: &[Engine],
    tls: &[TlsProvider],
) -> (Vec<Setup>, Vec<Setup>) {
    let (mut supported, mut skipped) = (Vec::new(), Vec::new());
    for &dispatch in dispatches {
        for &engine in engines {
            for &tls in tls {
                let setup = Setup {
                    dispatch,
                    engine,
                    tls,
                };
                let list = match setup.is_supported() {
                    true => &mut supported,
                    false => &mut skipped,
                };
                if !list.contains(&setup) {
                    list.push(setup);
                }
            }
        }
    }
    (supported, skipped)
}

/// Each peer with h2c and/or TLS, as the TLS providers of the matrix ask
/// (any TLS provider means the peer's own OpenSSL).
pub fn peer_targets(peers: &[Peer], tls: &[TlsProvider]) -> Vec<(Peer, bool)> {
    let mut out = Vec::new();
    for &peer in peers {
        for is_tls in tls.iter().map(|t| t.is_tls()) {
            if !out.contains(&(peer, is_tls)) {
                out.push((peer, is_tls));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        for setup in Setup::supported() {
            let t = Target::H2lab(setup);
            let [a, b, c] = t.columns();
            assert_eq!(Target::from_columns(&a, &b, &c), Ok(t));
        }
        for peer in [Peer::Nginx, Peer::H2o, Peer::Nghttpd] {
            for tls in [false, true] {
                let t = Target::Peer { peer, tls };
                let [a, b, c] = t.columns();
                assert_eq!(Target::from_columns(&a, &b, &c), Ok(t));
            }
        }
        assert!(Target::from_columns("iis", "peer", "none").is_err());
        assert!(Target::from_columns("poll", "mini", "gnutls").is_err());
    }

    #[test]
    fn unsupported_setups_are_set_apart_and_peers_paired_with_tls() {
        let (ok, skipped) = setups(
            &[Dispatch::Poll, Dispatch::Poll],
            &[Engine::Mini, Engine::H2],
            &[TlsProvider::None],
        );
        assert_eq!(ok.len(), 1);
        assert_eq!(skipped.len(), 1);
        let tls = [TlsProvider::None, TlsProvider::Rustls, TlsProvider::Openssl];
        assert_eq!(
            peer_targets(&[Peer::H2o], &tls),
            [(Peer::H2o, false), (Peer::H2o, true)]
        );
    }
}
