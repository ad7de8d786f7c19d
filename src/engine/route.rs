//! What each request is answered, by method and path: the routes, one
//! table for both engines (docs/serving.md has it for users; `serve
//! --help` prints [`TABLE`]).
//!
//! | path | answer |
//! |---|---|
//! | `/` | the configured default: `--body`, after `--work` |
//! | `/bytes/SIZE` | SIZE octets of the body pattern (at most 64 MiB) |
//! | `/cpu/DUR` | the default body after DUR of CPU work |
//! | `/sleep/DUR` | the default body after a DUR blocking sleep |
//! | `/delay/DUR` | the default body, due DUR later (no thread held) |
//! | `/status/CODE` | status CODE (200 to 599), no body |
//! | anything else | 404, no body |
//!
//! GET, HEAD and POST are served (a POST's body is read and dropped);
//! HEAD gets the GET's header fields and no body; any other method gets
//! 405 with `allow`. A query (`?...`) is ignored.

use std::time::Duration;

use super::body::{Body, MAX_BODY};
use super::work::{duration, Work};
use super::Handler;

/// The route table as `serve --help` prints it.
pub const TABLE: &str = "\
Routes (GET, HEAD and POST; any other method is answered 405; a query is ignored):
  /              the default answer: --body octets after --work
  /bytes/SIZE    SIZE octets of the body pattern (at most 64 MiB)
  /cpu/DUR       the default body after DUR of CPU work (DUR as in --work: 50us, 1ms)
  /sleep/DUR     the default body after a DUR blocking sleep on the serving thread
  /delay/DUR     the default body, due DUR later without holding a thread
  /status/CODE   status CODE (200 to 599), no body
  anything else  404, no body
Every answer carries date, content-length (not on 204 or 304) and content-type.";

/// A request's method, as far as the routes care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Connect,
    /// Any other (well-formed) method: 405.
    Other,
}

impl Method {
    pub fn parse(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
}

/// Where a path leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Default,
    Bytes(u64),
    Work(Work),
    Status(u16),
    NotFound,
}

impl Route {
    /// The route of a request's `:path` (its query ignored).
    pub fn parse(path: &[u8]) -> Route {
        let path = match path.iter().position(|&c| c == b'?' || c == b'#') {
            Some(i) => &path[..i],
            None => path,
        };
        if path == b"/" {
            return Route::Default;
        }
        let Some(rest) = path.strip_prefix(b"/") else {
            return Route::NotFound;
        };
        let Some(slash) = rest.iter().position(|&c| c == b'/') else {
            return Route::NotFound;
        };
        let (name, arg) = (&rest[..slash], &rest[slash + 1..]);
        let Ok(arg) = std::str::from_utf8(arg) else {
            return Route::NotFound;
        };
        let number = || -> Option<u64> {
            (!arg.is_empty() && arg.len() <= 12 && arg.bytes().all(|c| c.is_ascii_digit()))
                .then(|| arg.parse().ok())
                .flatten()
        };
        let dur = || -> Option<Duration> {
            (!arg.is_empty() && arg.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.'))
                .then(|| duration(arg).ok())
                .flatten()
        };
        let route = match name {
            b"bytes" => number().filter(|&n| n <= MAX_BODY).map(Route::Bytes),
            b"cpu" => dur().map(|d| Route::Work(Work::Cpu(d))),
            b"sleep" => dur().map(|d| Route::Work(Work::Sleep(d))),
            b"delay" => dur().map(|d| Route::Work(Work::Delay(d))),
            b"status" => number()
                .filter(|n| (200..=599).contains(n))
                .map(|n| Route::Status(n as u16)),
            _ => None,
        };
        route.unwrap_or(Route::NotFound)
    }
}

/// A response's `content-type` (an enum, so that comparing answers, which
/// the mini engine does per response, compares no text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Html,
    OctetStream,
    Plain,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Html => "text/html",
            ContentType::OctetStream => "application/octet-stream",
            ContentType::Plain => "text/plain",
        }
    }
}

/// What a request is answered: its status, header fields, body and the
/// work done before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The body's length (`content-length`, also for HEAD).
    pub length: u64,
    /// Whether the body is sent (not for HEAD).
    pub send_body: bool,
    pub content_type: ContentType,
    /// 405: `allow` says which methods are.
    pub allow: bool,
    pub work: Work,
    /// The body is `--body-file`'s, read for this answer.
    pub file: bool,
}

/// `allow`'s value.
pub const ALLOWED: &str = "GET, HEAD, POST";

impl Answer {
    /// The answer to `method` on `route`, `handler` being the default one.
    pub fn to(method: Method, route: Route, handler: &Handler) -> Answer {
        let plain = |status: u16| Answer {
            status,
            length: 0,
            send_body: true,
            content_type: ContentType::Plain,
            allow: false,
            work: Work::None,
            file: false,
        };
        let mut answer = match method {
            Method::Connect | Method::Other => {
                return Answer {
                    allow: true,
                    ..plain(405)
                }
            }
            Method::Get | Method::Head | Method::Post => match route {
                Route::Default => Answer::default_for(handler),
                Route::Bytes(n) => Answer {
                    length: n,
                    content_type: ContentType::OctetStream,
                    ..plain(200)
                },
                Route::Work(work) => Answer {
                    work,
                    ..Answer::default_for(handler)
                },
                Route::Status(code) => plain(code),
                Route::NotFound => plain(404),
            },
        };
        if method == Method::Head {
            answer.send_body = false;
        }
        answer
    }

    /// GET `/`.
    pub fn default_for(handler: &Handler) -> Answer {
        Answer {
            status: 200,
            length: handler
                .file
                .as_ref()
                .map_or(handler.body.len(), |f| f.len()),
            send_body: true,
            content_type: ContentType::Html,
            allow: false,
            work: handler.work,
            file: handler.file.is_some(),
        }
    }

    /// The octets of body that go out.
    pub fn body_len(&self) -> u64 {
        match self.send_body {
            true => self.length,
            false => 0,
        }
    }

    /// 204 and 304 carry no `content-length` (RFC 9110 §8.6).
    pub fn has_content_length(&self) -> bool {
        !matches!(self.status, 204 | 304)
    }

    /// The body's octets are the pattern's ([`Body`]) from 0.
    pub fn body(&self) -> Body {
        Body::new(self.body_len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lead_to_their_routes() {
        let ms = Duration::from_millis(1);
        let cases: [(&str, Route); 24] = [
            ("/", Route::Default),
            ("/?x=1", Route::Default),
            ("/bytes/0", Route::Bytes(0)),
            ("/bytes/1048576", Route::Bytes(1 << 20)),
            ("/bytes/67108865", Route::NotFound),
            ("/bytes/-1", Route::NotFound),
            ("/bytes/", Route::NotFound),
            ("/cpu/1ms", Route::Work(Work::Cpu(ms))),
            ("/sleep/1ms?a", Route::Work(Work::Sleep(ms))),
            ("/delay/1ms", Route::Work(Work::Delay(ms))),
            ("/delay/2m", Route::NotFound),
            ("/status/418", Route::Status(418)),
            ("/status/199", Route::NotFound),
            ("/status/600", Route::NotFound),
            ("/index.html", Route::NotFound),
            ("*", Route::NotFound),
            ("/bytes/5/6", Route::NotFound),
            // Digits only, at most 12 of them: Rust's parse would take a
            // sign, and leading zeros past 12.
            ("/bytes/+12", Route::NotFound),
            ("/status/+200", Route::NotFound),
            ("/bytes/0000000000012", Route::NotFound),
            ("/bytes/000000000012", Route::Bytes(12)),
            // A duration is ASCII letters, digits and a point (a path's
            // `µ` would come percent-encoded: `us` is the unit).
            (
                "/sleep/1.5ms",
                Route::Work(Work::Sleep(Duration::from_micros(1500))),
            ),
            ("/cpu/50µs", Route::NotFound),
            (
                "/cpu/50us",
                Route::Work(Work::Cpu(Duration::from_micros(50))),
            ),
        ];
        for (path, route) in cases {
            assert_eq!(Route::parse(path.as_bytes()), route, "{path}");
        }
    }

    #[test]
    fn methods_get_their_answers() {
        let handler = Handler {
            work: Work::Cpu(Duration::from_micros(5)),
            body: Body::new(100).unwrap(),
            ..Handler::default()
        };
        let get = Answer::to(Method::Get, Route::Default, &handler);
        assert_eq!((get.status, get.length, get.body_len()), (200, 100, 100));
        assert_eq!(get.work, handler.work);
        let head = Answer::to(Method::Head, Route::Default, &handler);
        assert_eq!((head.status, head.length, head.body_len()), (200, 100, 0));
        let post = Answer::to(Method::Post, Route::Bytes(7), &handler);
        assert_eq!((post.length, post.work), (7, Work::None));
        assert_eq!(post.body(), Body::new(7).unwrap());
        assert_eq!(head.body(), Body::new(0).unwrap());
        let put = Answer::to(Method::Other, Route::Default, &handler);
        assert_eq!((put.status, put.allow, put.body_len()), (405, true, 0));
        let missing = Answer::to(Method::Get, Route::NotFound, &handler);
        assert_eq!((missing.status, missing.body_len()), (404, 0));
        let no_content = Answer::to(Method::Get, Route::Status(204), &handler);
        assert!(!no_content.has_content_length());
        assert!(get.has_content_length());
    }
}
