//! The requests a load sends, each encoded once into an HPACK header block
//! that is copied into every HEADERS frame: every field a literal without
//! indexing (RFC 7541 §6.2.2) or a static-table entry, so the server's
//! dynamic table never changes and one block serves every stream. With
//! `--browser-headers` a request is its fields instead, which each
//! connection encodes with its own dynamic table, as browsers do.
//!
//! What an answer must be follows from the path when it is one of `h2lab
//! serve`'s routes with a fixed answer: `/bytes/SIZE` (that body) and
//! `/status/CODE` (that status).

use std::sync::Arc;

use crate::engine::route::Route;
use crate::engine::Body;
use crate::hpack::encode;

/// What one request is: method, path (with its query), extra headers and
/// an optional body. Shared by every connection of every thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub block: Vec<u8>,
    /// With `--browser-headers`: the fields, encoded per connection with
    /// its dynamic table (then `block` is not used).
    pub fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    pub body: Option<Arc<[u8]>>,
    /// The path and query, for the report.
    pub path: String,
    /// What its answer must be, from its route.
    pub expect: Expect,
}

/// What an answer must be: its body, its status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    pub body: Option<Body>,
    pub status: Option<u16>,
}

impl Expect {
    /// What `h2lab serve` answers `path` with, where that is fixed.
    pub fn of(path: &str) -> Expect {
        match Route::parse(path.as_bytes()) {
            Route::Bytes(n) => Expect {
                body: Body::new(n),
                status: Some(200),
            },
            Route::Status(code) => Expect {
                body: Body::new(0),
                status: Some(code),
            },
            _ => Expect::default(),
        }
    }
}

/// The fields a browser sends beside the request line, about 600 octets
/// with the pseudo-header fields (`--browser-headers`): what Chrome sends
/// for a page's subresource, with a session cookie.
pub const BROWSER_HEADERS: [(&str, &str); 10] = [
    ("sec-ch-ua", "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\""),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Linux\""),
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
    ("sec-fetch-site", "same-origin"),
    ("sec-fetch-mode", "no-cors"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-US,en;q=0.9"),
    ("cookie", "session=7f3c9a2e41d84b0f9e6c1a5d3b7e2f48; _ga=GA1.1.1839477264.1733486400; theme=dark; consent=analytics%3Dfalse%26ads%3Dfalse"),
];

/// The parts a request is built from (`--method`, the URL's path, `-H`, `-d`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    pub method: String,
    pub authority: String,
    pub https: bool,
    pub path: String,
    /// Lower-case names, checked by [`header`].
    pub headers: Vec<(String, String)>,
    pub body: Option<Arc<[u8]>>,
    /// Encode per connection with a dynamic table (`--browser-headers`).
    pub indexed: bool,
}

impl Spec {
    pub fn encode(&self) -> Request {
        let fields = self.indexed.then(|| {
            let scheme = if self.https { "https" } else { "http" };
            let mut f: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut push =
                |n: &str, v: &str| f.push((n.as_bytes().to_vec(), v.as_bytes().to_vec()));
            push(":method", &self.method);
            push(":scheme", scheme);
            push(":path", &self.path);
            push(":authority", &self.authority);
            for (n, v) in &self.headers {
                push(n, v);
            }
            if let Some(body) = &self.body {
                push("content-length", &body.len().to_string());
            }
            f
        });
        let mut b = Vec::with_capacity(64);
        match self.method.as_str() {
            "GET" => b.push(0x82),
            "POST" => b.push(0x83),
            m => literal(&mut b, 2, m),
        }
        b.push(if self.https { 0x87 } else { 0x86 });
        match self.path.as_str() {
            "/" => b.push(0x84),
            p => literal(&mut b, 4, p),
        }
        literal(&mut b, 1, &self.authority);
        for (name, value) in &self.headers {
            b.push(0x00);
            string(&mut b, name);
            string(&mut b, value);
        }
        if let Some(body) = &self.body {
            // content-length, static name 28.
            literal(&mut b, 28, &body.len().to_string());
        }
        Request {
            block: b,
            fields,
            body: self.body.clone(),
            path: self.path.clone(),
            expect: Expect::of(&self.path),
        }
    }
}

/// A literal field without indexing whose name is static entry `index`.
fn literal(b: &mut Vec<u8>, index: usize, value: &str) {
    encode::literal(b, index, value.as_bytes());
}

/// A string literal, not Huffman coded.
fn string(b: &mut Vec<u8>, s: &str) {
    encode::string(b, s.as_bytes(), false);
}

/// Headers HTTP/2 forbids (RFC 9113 §8.2.2) or that we set ourselves.
const REFUSED: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// `-H 'Name: value'` as a field: the name lower-cased and checked (a
/// token, not one HTTP/2 forbids), the value without CR, LF or NUL.
/// `host` is answered with `Authority`, which replaces `:authority` (as
/// h2load does).
pub fn header(arg: &str) -> Result<Header, String> {
    let (name, value) = arg
        .split_once(':')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| format!("header '{arg}' is not NAME:VALUE"))?;
    let name = name.trim().to_ascii_lowercase();
    let value = value.trim().to_string();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("header name '{name}' is not a token"));
    }
    if REFUSED.contains(&name.as_str()) {
        return Err(format!(
            "header '{name}' is not sent by HTTP/2 clients or is set by h2lab"
        ));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(format!("header '{name}' has CR, LF or NUL in its value"));
    }
    Ok(match name.as_str() {
        "host" => Header::Authority(value),
        _ => Header::Field(name, value),
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Header {
    Authority(String),
    Field(String, String),
}

/// `--method`: a token, upper-cased as typed (methods are case-sensitive;
/// we keep what the user wrote).
pub fn method(arg: &str) -> Result<String, String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    match !arg.is_empty() && arg.chars().all(token) {
        true => Ok(arg.to_string()),
        false => Err(format!("method '{arg}' is not a token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(method: &str, path: &str) -> Spec {
        Spec {
            method: method.into(),
            authority: "h:1".into(),
            https: false,
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_plain_get_is_static_entries_and_the_authority() {
        let r = spec("GET", "/").encode();
        assert_eq!(r.block, [0x82, 0x86, 0x84, 0x01, 3, b'h', b':', b'1']);
        assert_eq!(r.body, None);
    }

    /// Decoded by the `h2` crate's own HPACK decoder via a real server is
    /// tested end to end; here the octets of each field kind.
    #[test]
    fn paths_methods_headers_and_bodies_are_literals() {
        let mut s = spec("PUT", "/a?b=1");
        s.headers.push(("x-y".into(), "z".into()));
        s.body = Some(Arc::from(&b"abc"[..]));
        let r = s.encode();
        let mut want = vec![0x02, 3];
        want.extend_from_slice(b"PUT");
        want.extend_from_slice(&[0x86, 0x04, 6]);
        want.extend_from_slice(b"/a?b=1");
        want.extend_from_slice(&[0x01, 3]);
        want.extend_from_slice(b"h:1");
        want.extend_from_slice(&[0x00, 3]);
        want.extend_from_slice(b"x-y");
        want.extend_from_slice(&[1, b'z']);
        // content-length: index 28 ≥ 15, so 0x0f then 13.
        want.extend_from_slice(&[0x0f, 13, 1, b'3']);
        assert_eq!(r.block, want);
        let long = spec("GET", &format!("/{}", "x".repeat(299))).encode();
        assert_eq!(&long.block[..5], &[0x82, 0x86, 0x04, 127, 173]);
    }

    #[test]
    fn headers_are_checked() {
        assert_eq!(
            header("X-Test: 1"),
            Ok(Header::Field("x-test".into(), "1".into()))
        );
        assert_eq!(
            header("Host:example:8"),
            Ok(Header::Authority("example:8".into()))
        );
        for bad in [
            "nocolon",
            ":x",
            "bad name: 1",
            "connection: close",
            "Content-Length: 5",
        ] {
            assert!(header(bad).is_err(), "{bad}");
        }
        assert!(method("GET").is_ok());
        assert!(method("G T").is_err());
        assert!(method("").is_err());
    }
}
