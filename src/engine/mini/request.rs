//! A request's header section, checked as its fields are decoded (RFC 9113
//! §8.2–§8.3): what the mini engine keeps of it is its method, its route
//! and its content-length, so nothing is stored per field.

use super::super::route::{Method, Route};
use crate::hpack::decode::Known;

/// Pseudo-header fields of a request, as bits of [`Check::seen`].
const METHOD: u8 = 1;
const SCHEME: u8 = 2;
const PATH: u8 = 4;
const AUTHORITY: u8 = 8;

/// What a well-formed request's header section says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub method: Method,
    pub route: Route,
    pub content_length: Option<u64>,
}

/// The checks of one header section (a request's or its trailers'),
/// fed field by field.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    trailers: bool,
    seen: u8,
    regular: bool,
    method: Method,
    route: Route,
    content_length: Option<u64>,
    /// The first reason the section is malformed.
    error: Option<&'static str>,
}

impl Check {
    pub fn request() -> Self {
        Self {
            trailers: false,
            seen: 0,
            regular: false,
            method: Method::Other,
            route: Route::NotFound,
            content_length: None,
            error: None,
        }
    }

    /// Trailers: no pseudo-header field at all (§8.1).
    pub fn trailers() -> Self {
        Self {
            trailers: true,
            ..Self::request()
        }
    }

    #[inline]
    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        self.field_known(name, value, Known::NOTHING);
    }

    /// [`Check::field`], the octets of the name or the value already
    /// known good where `known` says (the static table's, or a dynamic
    /// entry's checked when it was inserted). Returns whether the field's
    /// octets are good (§8.2.1: name and value), for the decoder to keep
    /// with a dynamic entry: its octets are then checked once per
    /// connection, not at every request that refers to it.
    #[inline]
    pub fn field_known(&mut self, name: &[u8], value: &[u8], known: Known) -> bool {
        let pseudo = name.first() == Some(&b':');
        let octets_ok = (known.name || pseudo || check_name(name).is_ok())
            && (known.value || check_value(value).is_ok());
        if self.error.is_none() {
            if let Err(why) = self.check(name, value, octets_ok) {
                self.error = Some(why);
            }
        }
        octets_ok
    }

    /// The checks of one field; its octets' (§8.2.1) only if `octets_ok`
    /// is not already known.
    fn check(&mut self, name: &[u8], value: &[u8], octets_ok: bool) -> Result<(), &'static str> {
        if !octets_ok {
            check_value(value)?;
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.trailers {
                return Err("pseudo-header field in trailers");
            }
            if self.regular {
                return Err("pseudo-header field after a regular field");
            }
            let bit = match pseudo {
                b"method" => METHOD,
                b"scheme" => SCHEME,
                b"path" => PATH,
                b"authority" => AUTHORITY,
                b"status" => return Err("response pseudo-header field :status in a request"),
                _ => return Err("unknown pseudo-header field"),
            };
            if self.seen & bit != 0 {
                return Err("pseudo-header field repeated");
            }
            self.seen |= bit;
            match bit {
                METHOD => {
                    if value.is_empty() || !value.iter().all(|&c| is_tchar(c)) {
                        return Err(":method not a token");
                    }
                    self.method = Method::parse(value);
                }
                PATH => {
                    if value.is_empty() {
                        return Err("empty :path");
                    }
                    self.route = Route::parse(value);
                }
                _ => {}
            }
            return Ok(());
        }
        self.regular = true;
        if !octets_ok {
            check_name(name)?;
        }
        match name {
            b"connection" | b"proxy-connection" | b"keep-alive" | b"transfer-encoding"
            | b"upgrade" => Err("connection-specific header field"),
            b"te" if value != b"trailers" => Err("te other than \"trailers\""),
            b"content-length" => {
                let n = (!value.is_empty()
                    && value.len() <= 19
                    && value.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(value).ok()?.parse::<u64>().ok())
                .flatten()
                .ok_or("content-length not a number")?;
                match self.content_length {
                    Some(m) if m != n => Err("two different content-lengths"),
                    _ => {
                        self.content_length = Some(n);
                        Ok(())
                    }
                }
            }
            _ => Ok(()),
        }
    }

    /// The section's end: a request must have said `:method`, `:scheme`
    /// and `:path` (CONNECT: `:authority` and neither of the others).
    pub fn finish(self) -> Result<Head, &'static str> {
        if let Some(why) = self.error {
            return Err(why);
        }
        if !self.trailers {
            if self.method == Method::Connect {
                if self.seen & (SCHEME | PATH) != 0 || self.seen & AUTHORITY == 0 {
                    return Err("CONNECT with :scheme or :path, or without :authority");
                }
            } else if self.seen & METHOD == 0 {
                return Err(":method missing");
            } else if self.seen & SCHEME == 0 {
                return Err(":scheme missing");
            } else if self.seen & PATH == 0 {
                return Err(":path missing");
            }
        }
        Ok(Head {
            method: self.method,
            route: self.route,
            content_length: self.content_length,
        })
    }
}

/// What each octet may be: a token character (RFC 9110 §5.6.2's tchar),
/// an uppercase letter, an octet a field value must not hold (NUL, CR,
/// LF). A table, so that a field's check is one load per octet.
const TCHAR: u8 = 1;
const UPPER: u8 = 2;
const NOT_IN_VALUE: u8 = 4;
const CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() {
            t[c] |= TCHAR;
        }
        if b.is_ascii_uppercase() {
            t[c] |= UPPER;
        }
        c += 1;
    }
    let extra = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] |= TCHAR;
        i += 1;
    }
    t[0] |= NOT_IN_VALUE;
    t[b'\r' as usize] |= NOT_IN_VALUE;
    t[b'\n' as usize] |= NOT_IN_VALUE;
    t
}

/// §8.2.1: a name of lowercase token characters.
fn check_name(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty field name");
    }
    let mut all = TCHAR;
    let mut any = 0;
    for &c in name {
        all &= CLASS[c as usize];
        any |= CLASS[c as usize];
    }
    if any & UPPER != 0 {
        return Err("field name with uppercase letters");
    }
    if all & TCHAR == 0 {
        return Err("field name with a character outside a token");
    }
    Ok(())
}

/// §8.2.1: no NUL, CR or LF, and no whitespace at either end.
fn check_value(value: &[u8]) -> Result<(), &'static str> {
    if holds_nul_cr_or_lf(value) {
        return Err("field value with NUL, CR or LF");
    }
    if matches!(value.first(), Some(b' ' | b'\t')) || matches!(value.last(), Some(b' ' | b'\t')) {
        return Err("field value with whitespace at an end");
    }
    Ok(())
}

/// Whether `v` holds NUL, CR or LF: eight octets at a time (a word has a
/// zero octet iff `(x - 0x01..) & !x & 0x80..` is not 0, and `x ^ c..` has
/// one where `x` has `c`), the rest one by one. The check of every value
/// of every request, so it is worth the trick: octet by octet it was a
/// sixth of `poll`'s CPU at 5 × 100.
fn holds_nul_cr_or_lf(v: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let mut words = v.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 octets"));
        if zero(x) | zero(x ^ (LO * u64::from(b'\r'))) | zero(x ^ (LO * u64::from(b'\n'))) != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&c| CLASS[c as usize] & NOT_IN_VALUE != 0)
}

/// RFC 9110 §5.6.2's tchar.
fn is_tchar(c: u8) -> bool {
    CLASS[c as usize] & TCHAR != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(fields: &[(&str, &str)], trailers: bool) -> Result<Head, &'static str> {
        let mut c = match trailers {
            true => Check::trailers(),
            false => Check::request(),
        };
        for (n, v) in fields {
            c.field(n.as_bytes(), v.as_bytes());
        }
        c.finish()
    }

    const GET: [(&str, &str); 3] = [(":method", "GET"), (":scheme", "https"), (":path", "/")];

    /// At every position of values of every length to 40, each of NUL,
    /// CR and LF is found, and nothing else is.
    #[test]
    fn nul_cr_and_lf_are_found_anywhere() {
        for len in 1..40 {
            for at in 0..len {
                for c in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[at] = c;
                    let bad = matches!(c, 0 | b'\r' | b'\n');
                    assert_eq!(holds_nul_cr_or_lf(&v), bad, "{len} {at} {c}");
                }
            }
        }
        assert!(!holds_nul_cr_or_lf(b""));
    }

    #[test]
    fn a_plain_request_is_well_formed() {
        let head = check(&GET, false).unwrap();
        assert_eq!((head.method, head.route), (Method::Get, Route::Default));
        let mut post = GET.to_vec();
        post[0].1 = "POST";
        post.push(("content-length", "12"));
        post.push(("te", "trailers"));
        let head = check(&post, false).unwrap();
        assert_eq!((head.method, head.content_length), (Method::Post, Some(12)));
        assert!(check(&[("x-checksum", "abc")], true).is_ok());
        let connect = [(":method", "CONNECT"), (":authority", "h:443")];
        assert_eq!(check(&connect, false).unwrap().method, Method::Connect);
    }

    /// What `field_known` says of a field's octets (the decoder keeps it
    /// with a dynamic entry): a pseudo-header's name is good though `:`
    /// is no token character; a bad regular name or value is not.
    #[test]
    fn a_fields_octets_are_judged_once() {
        let mut c = Check::request();
        assert!(c.field_known(b":path", b"/", Known::NOTHING));
        assert!(c.field_known(b"x-a", b"b", Known::NOTHING));
        assert!(!c.field_known(b"X-A", b"b", Known::NOTHING));
        assert!(!c.field_known(b"x-a", b"b\r", Known::NOTHING));
        assert!(c.field_known(b"x-a", b"b", Known::BOTH));
    }

    /// A content-length is digits only, at most 19 of them (Rust's parse
    /// would take a sign, and leading zeros past 19).
    #[test]
    fn a_content_length_is_plain_digits() {
        for bad in ["+12", "00000000000000000012", "", "1 2"] {
            let mut f = GET.to_vec();
            f.push(("content-length", bad));
            assert_eq!(
                check(&f, false).err(),
                Some("content-length not a number"),
                "{bad:?}"
            );
        }
        let mut f = GET.to_vec();
        f.push(("content-length", "0000000000000000012"));
        assert_eq!(check(&f, false).unwrap().content_length, Some(12));
    }

    /// CONNECT names `:authority` and neither `:scheme` nor `:path`.
    #[test]
    fn connect_has_an_authority_and_no_scheme_or_path() {
        let why = Some("CONNECT with :scheme or :path, or without :authority");
        let connect = |more: &[(&'static str, &'static str)]| {
            let mut f = vec![(":method", "CONNECT")];
            f.extend_from_slice(more);
            check(&f, false).err()
        };
        assert_eq!(connect(&[(":authority", "h:443")]), None);
        assert_eq!(connect(&[]), why);
        assert_eq!(
            connect(&[(":authority", "h:443"), (":scheme", "https")]),
            why
        );
        assert_eq!(connect(&[(":authority", "h:443"), (":path", "/")]), why);
    }

    /// Every kind of malformed section, each with its own reason.
    #[test]
    fn each_malformation_has_its_reason() {
        let with = |extra: (&'static str, &'static str)| {
            let mut f = GET.to_vec();
            f.push(extra);
            f
        };
        type Case<'a> = (Vec<(&'a str, &'a str)>, bool, &'a str);
        let cases: Vec<Case> = vec![
            (
                with(("X-Upper", "1")),
                false,
                "field name with uppercase letters",
            ),
            (
                with(("a b", "1")),
                false,
                "field name with a character outside a token",
            ),
            (with(("", "1")), false, "empty field name"),
            (with(("x", "a\nb")), false, "field value with NUL, CR or LF"),
            (
                with(("x", " a")),
                false,
                "field value with whitespace at an end",
            ),
            (with((":foo", "1")), false, "unknown pseudo-header field"),
            (
                with((":status", "200")),
                false,
                "response pseudo-header field :status in a request",
            ),
            (
                vec![("x", "1"), (":method", "GET")],
                false,
                "pseudo-header field after a regular field",
            ),
            (with((":path", "/")), false, "pseudo-header field repeated"),
            (
                with(("connection", "close")),
                false,
                "connection-specific header field",
            ),
            (with(("te", "gzip")), false, "te other than \"trailers\""),
            (
                with(("content-length", "1x")),
                false,
                "content-length not a number",
            ),
            (
                vec![(":method", "GET"), (":scheme", "http"), (":path", "")],
                false,
                "empty :path",
            ),
            (
                vec![(":method", "G T"), (":scheme", "http"), (":path", "/")],
                false,
                ":method not a token",
            ),
            (
                vec![(":scheme", "http"), (":path", "/")],
                false,
                ":method missing",
            ),
            (
                vec![(":method", "GET"), (":path", "/")],
                false,
                ":scheme missing",
            ),
            (
                vec![(":method", "GET"), (":scheme", "http")],
                false,
                ":path missing",
            ),
            (
                vec![(":method", "CONNECT"), (":path", "/")],
                false,
                "CONNECT with :scheme or :path, or without :authority",
            ),
            (
                vec![(":path", "/")],
                true,
                "pseudo-header field in trailers",
            ),
        ];
        for (fields, trailers, why) in cases {
            assert_eq!(check(&fields, trailers), Err(why), "{fields:?}");
        }
        let mut two = with(("content-length", "1"));
        two.push(("content-length", "2"));
        assert_eq!(check(&two, false), Err("two different content-lengths"));
        two.pop();
        two.push(("content-length", "1"));
        assert!(check(&two, false).is_ok());
    }
}
