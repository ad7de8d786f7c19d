//! One thread of a load run: a mio loop over its share of the clients.
//! Each client is a slot that holds one connection at a time; a slot
//! opens a new connection after a graceful GOAWAY or when its stream ids
//! run out, and sends again what the server did not process.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::client::{Finished, Outcome, State};
use super::conn::{Broken, Conn, InFlight};
use super::tally::{Problem, Tally};
use super::timer::Timer;
use super::timetable::Timetable;
use super::{Control, Plan};

/// Times a request refused with REFUSED_STREAM is sent again.
const MAX_RETRIES: u8 = 3;

/// One client (`-c`): its connection, and the work it has left.
struct Slot {
    conn: Option<Conn>,
    /// Requests still to start (`-n`; unbounded with `-D`).
    quota: u64,
    /// Requests to send again, first.
    retry: Vec<InFlight>,
    /// Where in the run's order of requests this client is (`-i` takes
    /// them in turn, weights repeat them).
    next_request: usize,
    /// `--rps`: when its requests are due.
    timetable: Option<Timetable>,
    /// Responses on the current connection: a new connection is opened
    /// only after one that served something.
    served: u64,
}

pub struct Worker<'a> {
    plan: &'a Plan,
    control: &'a Control,
    poll: Poll,
    slots: Vec<Slot>,
    tally: Tally,
    last_progress: Instant,
    ended: Vec<Finished<InFlight>>,
    /// `--rps`: wakes the loop when the next request is due.
    timer: Option<Timer>,
}

/// The timer's token: past every slot's.
const TIMER: Token = Token(usize::MAX);

impl<'a> Worker<'a> {
    /// A worker for the given (global client number, quota) pairs; opens
    /// every connection.
    pub fn start(
        plan: &'a Plan,
        control: &'a Control,
        clients: &[(usize, u64)],
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let timer = match plan.interval {
            Some(_) => Some(Timer::new(poll.registry(), TIMER)?),
            None => None,
        };
        let mut w = Worker {
            plan,
            control,
            poll,
            timer,
            slots: Vec::with_capacity(clients.len()),
            tally: Tally::new(plan.measure_from, clients.len(), plan.requests.len()),
            last_progress: plan.start,
            ended: Vec::new(),
        };
        for &(client, quota) in clients {
            let timetable = plan
                .interval
                .map(|i| Timetable::new(plan.start, i, client, plan.clients));
            w.slots.push(Slot {
                conn: None,
                quota,
                retry: Vec::new(),
                // Every client takes the URLs in order from the first (h2load's rule).
                next_request: 0,
                timetable,
                served: 0,
            });
            w.connect(w.slots.len() - 1, Instant::now());
        }
        Ok(w)
    }

    /// Runs to the end and hands back what it counted.
    pub fn run(mut self) -> Tally {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 64 * 1024];
        let mut plain_in = Vec::with_capacity(64 * 1024);
        loop {
            if self.control.interrupted.load(Ordering::Relaxed) {
                return self.finish(true);
            }
            let now = Instant::now();
            if !self.issue(now) || self.out_of_time(now) {
                return self.finish(false);
            }
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.arm_timer(now) {
                self.tally
                    .problem(Problem::new("timer failed", e.to_string()));
                return self.finish(false);
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.tally
                        .problem(Problem::new("poll failed", e.to_string()));
                    return self.finish(false);
                }
            }
            self.handle(&events, &mut buf, &mut plain_in);
        }
    }

    /// With `-n`, every request of a client's quota is counted.
    fn counted(&self) -> bool {
        self.plan.due.is_none()
    }

    /// Requests may still start at `t`.
    fn issuing(&self, t: Instant) -> bool {
        self.plan.due.is_none_or(|d| t < d)
    }

    /// Opens slot `i`'s connection; a connect that fails at once is a
    /// connection error.
    fn connect(&mut self, i: usize, now: Instant) {
        let plan = self.plan;
        let opened = TcpStream::connect(plan.addr).and_then(|mut sock| {
            sock.set_nodelay(true)?;
            self.poll.registry().register(
                &mut sock,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(sock)
        });
        match opened {
            Ok(sock) => {
                let tls = plan.tls.as_ref().map(|(cfg, name)| {
                    rustls::ClientConnection::new(cfg.clone(), name.clone())
                        .expect("a client config with a valid server name")
                });
                let mut conn = Conn::new(sock, tls, now, plan.window);
                conn.h2.expect_body(plan.expect_body);
                self.slots[i].conn = Some(conn);
                self.slots[i].served = 0;
            }
            Err(e) => self.give_up(i, Some(Problem::connect(&e)), now),
        }
    }

    /// Starts every request that may start now and writes what is queued;
    /// whether anything is left to wait for.
    fn issue(&mut self, now: Instant) -> bool {
        let issuing = self.issuing(now);
        let mut busy = false;
        for i in 0..self.slots.len() {
            if self.slots[i].conn.is_none() {
                continue;
            }
            self.send_what_is_due(i, now, issuing);
            let s = &mut self.slots[i];
            let c = s.conn.as_mut().expect("checked above");
            if let Err(e) = c.flush() {
                let p = e.problem();
                self.close(i, Some(p), now);
                continue;
            }
            // A GOAWAY, or stream ids used up, and nothing left in flight:
            // this connection is done; the slot may open another.
            if c.h2.in_flight() == 0 && (c.h2.state() != State::Open || c.h2.exhausted()) {
                let problem = c.goaway_error();
                self.close(i, problem, now);
            }
            let s = &self.slots[i];
            let work = !s.retry.is_empty() || (issuing && s.quota > 0);
            busy |= work || s.conn.as_ref().is_some_and(|c| c.h2.in_flight() > 0);
        }
        busy
    }

    /// Sends retries, then new requests as the quota, the schedule and
    /// the server's limits allow.
    fn send_what_is_due(&mut self, i: usize, now: Instant, issuing: bool) {
        let plan = self.plan;
        let counted = self.counted();
        let s = &mut self.slots[i];
        let c = s.conn.as_mut().expect("an open connection");
        if !c.handshake_done() {
            return;
        }
        let room = |c: &Conn| c.h2.in_flight() < plan.streams && c.h2.can_send();
        while room(c) {
            let Some(r) = s.retry.pop() else { break };
            c.h2.send_request(&plan.requests[r.request], r, &mut c.plain);
        }
        while s.quota > 0 && room(c) {
            let started = match &mut s.timetable {
                Some(timetable) => {
                    let Some(due) = issuing.then(|| timetable.take(now)).flatten() else {
                        break;
                    };
                    if due >= plan.measure_from {
                        self.tally.schedule.sent += 1;
                        self.tally.lag(now - due);
                    }
                    due
                }
                None if issuing => now,
                None => break,
            };
            let request = plan.order[s.next_request];
            s.next_request = (s.next_request + 1) % plan.order.len();
            let tag = InFlight {
                started,
                request,
                retries: 0,
            };
            c.h2.send_request(&plan.requests[request], tag, &mut c.plain);
            if counted {
                s.quota -= 1;
            }
        }
    }

    /// Past the timeout after the last request was due (`-D`), or after
    /// the last progress (`-n`).
    fn out_of_time(&self, now: Instant) -> bool {
        match self.plan.due {
            Some(d) => now > d + self.plan.timeout,
            None => now > self.last_progress + self.plan.timeout,
        }
    }

    /// How long the poll may sleep: 50 ms at most (for the deadlines and
    /// Ctrl-C); the timer wakes it sooner for a scheduled request.
    fn poll_timeout(&self, now: Instant) -> Duration {
        match self.next_due(now) {
            Some(d) if d <= now => Duration::ZERO,
            _ => Duration::from_millis(50),
        }
    }

    /// `--rps`: when the next request of a slot that can send is due. A
    /// slot at its `-m` limit waits for a response (an event), not for the
    /// clock: a late schedule must not spin the loop.
    fn next_due(&self, now: Instant) -> Option<Instant> {
        let can_send = |c: &Conn| {
            c.handshake_done() && c.h2.in_flight() < self.plan.streams && c.h2.can_send()
        };
        self.slots
            .iter()
            .filter(|s| s.quota > 0 && s.conn.as_ref().is_some_and(can_send))
            .filter_map(|s| s.timetable.map(|t| t.next_due()))
            .filter(|&due| self.issuing(due.max(now)))
            .min()
    }

    /// Sets the timer for the next due request, if it is in the future.
    fn arm_timer(&self, now: Instant) -> io::Result<()> {
        match (&self.timer, self.next_due(now)) {
            (Some(timer), Some(due)) if due > now => timer.arm(due - now),
            _ => Ok(()),
        }
    }

    /// Reads what the events say is there and writes what it unblocks.
    fn handle(&mut self, events: &Events, buf: &mut [u8], plain_in: &mut Vec<u8>) {
        let now = Instant::now();
        let before = self.tally.succeeded + self.tally.failed;
        for event in events.iter() {
            if event.token() == TIMER {
                if let Some(t) = &self.timer {
                    t.clear();
                }
                continue;
            }
            let i = event.token().0;
            let Some(c) = self.slots.get_mut(i).and_then(|s| s.conn.as_mut()) else {
                continue;
            };
            match c.check_connected() {
                Ok(true) => {
                    let us = now.saturating_duration_since(c.opened).as_micros() as u64;
                    self.tally.connect_us.add(us);
                }
                Ok(false) if !c.connected => continue,
                Ok(false) => {}
                Err(e) => {
                    self.close(i, Some(Problem::connect(&e)), now);
                    continue;
                }
            }
            if event.is_writable() {
                c.writable = true;
            }
            let ended = &mut self.ended;
            let before = c.bytes_in;
            let read = c.receive(buf, plain_in, |f| ended.push(f));
            if now >= self.plan.measure_from {
                self.tally.bytes_in_measured += c.bytes_in - before;
            }
            if !c.first_byte && c.bytes_in > 0 {
                c.first_byte = true;
                let us = now.saturating_duration_since(c.opened).as_micros() as u64;
                self.tally.first_byte_us.add(us);
            }
            if self.tally.tls.is_none() {
                self.tally.tls = c.tls_info();
            }
            self.settle(i, now);
            let c = self.slots[i].conn.as_mut().expect("still open");
            match read.and_then(|()| c.flush()) {
                Ok(()) => {}
                Err(Broken::Io(e))
                    if e.kind() == io::ErrorKind::UnexpectedEof
                        && c.h2.in_flight() == 0
                        && matches!(c.h2.state(), State::GoingAway { .. }) =>
                {
                    // Closed after its GOAWAY, with nothing left open: the
                    // ordinary end of a connection.
                    let problem = c.goaway_error();
                    self.close(i, problem, now);
                }
                Err(e) => {
                    // After an error GOAWAY, the connection's end is its
                    // consequence: the GOAWAY is the reason.
                    let problem = c.goaway_error().unwrap_or_else(|| e.problem());
                    self.close(i, Some(problem), now);
                }
            }
        }
        let progress = self.tally.succeeded + self.tally.failed - before;
        if progress > 0 {
            self.last_progress = now;
            self.control.finished.fetch_add(progress, Ordering::Relaxed);
        }
    }

    /// Counts the requests of slot `i` that ended, or queues them again.
    fn settle(&mut self, i: usize, now: Instant) {
        let s = &mut self.slots[i];
        for f in self.ended.drain(..) {
            let mut r = f.tag;
            match f.outcome {
                Outcome::Refused if r.retries < MAX_RETRIES => {
                    r.retries += 1;
                    self.tally.retried += 1;
                    s.retry.push(r);
                }
                Outcome::Unprocessed => {
                    self.tally.retried += 1;
                    s.retry.push(r);
                }
                outcome => {
                    if matches!(outcome, Outcome::Status(_)) {
                        s.served += 1;
                    }
                    self.tally
                        .record(i, r.request, r.started, outcome, f.body, now);
                }
            }
        }
    }

    /// Ends slot `i`'s connection (for `problem`, if any): what it had in
    /// flight is lost; the slot opens a new connection if it has work left
    /// and the old one ended gracefully after serving something, and
    /// otherwise gives its work up.
    fn close(&mut self, i: usize, problem: Option<Problem>, now: Instant) {
        let Some(mut c) = self.slots[i].conn.take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.sock);
        self.tally.bytes_in += c.bytes_in;
        self.tally.bytes_out += c.bytes_out;
        self.tally.headers_in += c.h2.received.headers;
        self.tally.header_blocks += c.h2.received.blocks;
        self.tally.header_fields += c.h2.received.fields;
        self.tally.dated += c.h2.received.dated;
        self.tally.data_in += c.h2.received.data;
        let tally = &mut self.tally;
        c.h2.fail_all(|f| tally.record(i, f.tag.request, f.tag.started, f.outcome, f.body, now));
        let s = &self.slots[i];
        let work = !s.retry.is_empty() || (s.quota > 0 && self.issuing(now));
        if problem.is_none() && work && s.served > 0 {
            self.tally.reconnects += 1;
            self.connect(i, now);
            return;
        }
        // Gone gracefully, but before answering anything: not worth another
        // try, and the work it leaves undone needs a reason.
        let problem = match (problem, work) {
            (None, true) => Some(Problem::new(
                "closed before any response",
                "the server ended the connection (GOAWAY NO_ERROR, or stream ids used up) without answering on it",
            )),
            (p, _) => p,
        };
        self.give_up(i, problem, now);
    }

    /// Slot `i` is done for: a connection error (if `problem`), and with
    /// `-n` the rest of its share fails.
    fn give_up(&mut self, i: usize, problem: Option<Problem>, now: Instant) {
        if let Some(p) = problem {
            self.tally.connection_error(p);
        }
        let counted = self.counted();
        let s = &mut self.slots[i];
        s.conn = None;
        let retry = std::mem::take(&mut s.retry);
        let quota = std::mem::take(&mut s.quota);
        for r in retry {
            self.tally
                .record(i, r.request, r.started, Outcome::Lost, 0, now);
        }
        if counted {
            self.tally.fail_unsent(quota);
        }
    }

    /// Ends what is still open and hands back the tally.
    fn finish(mut self, interrupted: bool) -> Tally {
        let end = Instant::now();
        let counted = self.counted();
        let horizon = self.plan.due.map_or(end, |d| d.min(end));
        for i in 0..self.slots.len() {
            // `--rps`: requests due but never sent.
            let s = &self.slots[i];
            if let Some(t) = s
                .timetable
                .filter(|t| s.quota > 0 && t.next_due() < horizon)
            {
                self.tally.schedule.unsent += t.missed(self.plan.measure_from, horizon);
                self.tally.lag(horizon - t.next_due());
            }
            let Some(c) = self.slots[i].conn.as_mut() else {
                continue;
            };
            if interrupted {
                let from = self.plan.measure_from;
                self.tally.abandoned +=
                    c.h2.open_tags().filter(|r| r.started >= from).count() as u64;
                c.h2.fail_all(|_| {});
                self.slots[i].quota = 0;
                self.slots[i].retry.clear();
                self.close(i, None, end);
                continue;
            }
            if !c.h2.is_established() {
                // Never served (a server that takes one client at a time,
                // or one that never answers): a connection error.
                let problem = match c.connected {
                    true => Problem::new(
                        "no answer",
                        format!(
                            "the server accepted the connection but sent no HTTP/2 SETTINGS in {:?}",
                            end.duration_since(c.opened)
                        ),
                    ),
                    false => Problem::new(
                        "connect timed out",
                        format!("not connected after {:?}", end.duration_since(c.opened)),
                    ),
                };
                if !counted {
                    // `-D`: its share of requests in flight, `streams`,
                    // fails whether it could write them or not (h2c writes
                    // them blind at once, TLS nothing before its
                    // handshake), so that both count a starved connection
                    // alike.
                    c.h2.fail_all(|_| {});
                    self.tally.fail_unsent(self.plan.streams as u64);
                }
                self.close(i, Some(problem), end);
                continue;
            }
            // Still open at the end: timed out.
            let timed_out =
                c.h2.open_tags()
                    .filter(|r| r.started >= self.plan.measure_from)
                    .count() as u64;
            if timed_out > 0 {
                let p = Problem::new(
                    "timed out",
                    format!(
                        "no response {:?} after the last request was due",
                        self.plan.timeout
                    ),
                );
                let e = self
                    .tally
                    .problems
                    .entry(p.reason)
                    .or_insert((0, p.message));
                e.0 += timed_out;
            }
            self.close_quietly(i, end);
        }
        self.tally
    }

    /// Closes slot `i` at the end of the run: no reconnect, no error.
    fn close_quietly(&mut self, i: usize, now: Instant) {
        self.slots[i].retry.clear();
        let quota = std::mem::take(&mut self.slots[i].quota);
        self.close(i, None, now);
        if self.counted() {
            self.tally.fail_unsent(quota);
        }
    }
}
