//! A response's header block (HPACK, RFC 7541): `:status`, `content-type`,
//! `content-length` (not on 204 or 304), `allow` on 405, and `date`. Every
//! field is a static-table entry or a literal without indexing whose name
//! is a static entry, values raw: the block depends on nothing but the
//! answer and the second, so no dynamic table is kept for the client.

use super::super::date::HttpDate;
use super::super::route::{Answer, ALLOWED};
use crate::hpack::encode::{indexed, literal};

/// Static-table indexes (RFC 7541 Appendix A).
const STATUS: usize = 8;
const ALLOW: usize = 22;
const CONTENT_LENGTH: usize = 28;
const CONTENT_TYPE: usize = 31;
const DATE: usize = 33;

/// Appends `answer`'s header block.
pub fn block(answer: &Answer, date: &HttpDate, out: &mut Vec<u8>) {
    match answer.status {
        // `:status` with these values is a static entry of its own.
        200 => indexed(out, STATUS),
        204 => indexed(out, 9),
        206 => indexed(out, 10),
        304 => indexed(out, 11),
        400 => indexed(out, 12),
        404 => indexed(out, 13),
        500 => indexed(out, 14),
        code => literal(out, STATUS, digits(u64::from(code), &mut [0; 20])),
    }
    literal(out, CONTENT_TYPE, answer.content_type.as_str().as_bytes());
    if answer.has_content_length() {
        literal(out, CONTENT_LENGTH, digits(answer.length, &mut [0; 20]));
    }
    if answer.allow {
        literal(out, ALLOW, ALLOWED.as_bytes());
    }
    literal(out, DATE, date.text());
}

/// `n` in decimal, in `buf`.
fn digits(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut rest = n;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::route::{Method, Route};
    use crate::engine::{Body, Handler, Work};
    use crate::hpack::Decoder;

    fn fields(answer: &Answer) -> Vec<(String, String)> {
        let mut out = Vec::new();
        block(answer, &HttpDate::at(784_111_777), &mut out);
        let mut fields = Vec::new();
        Decoder::new(4096)
            .decode(&out, |n, v| {
                fields.push((
                    String::from_utf8(n.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                ))
            })
            .unwrap();
        fields
    }

    #[test]
    fn every_answer_says_its_status_type_length_and_date() {
        let handler = Handler {
            work: Work::None,
            body: Body::new(12).unwrap(),
            ..Handler::default()
        };
        let date = ("date".into(), "Sun, 06 Nov 1994 08:49:37 GMT".into());
        let f = |a: &[(&str, &str)]| -> Vec<(String, String)> {
            let mut v: Vec<(String, String)> = a
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            v.push(date.clone());
            v
        };
        let get = Answer::to(Method::Get, Route::Default, &handler);
        assert_eq!(
            fields(&get),
            f(&[
                (":status", "200"),
                ("content-type", "text/html"),
                ("content-length", "12")
            ])
        );
        let bytes = Answer::to(Method::Head, Route::Bytes(1_234_567), &handler);
        assert_eq!(
            fields(&bytes),
            f(&[
                (":status", "200"),
                ("content-type", "application/octet-stream"),
                ("content-length", "1234567")
            ])
        );
        let teapot = Answer::to(Method::Get, Route::Status(418), &handler);
        assert_eq!(
            fields(&teapot),
            f(&[
                (":status", "418"),
                ("content-type", "text/plain"),
                ("content-length", "0")
            ])
        );
        let none = Answer::to(Method::Get, Route::Status(204), &handler);
        assert_eq!(
            fields(&none),
            f(&[(":status", "204"), ("content-type", "text/plain")])
        );
        let put = Answer::to(Method::Other, Route::Default, &handler);
        assert_eq!(
            fields(&put),
            f(&[
                (":status", "405"),
                ("content-type", "text/plain"),
                ("content-length", "0"),
                ("allow", "GET, HEAD, POST")
            ])
        );
        let missing = Answer::to(Method::Get, Route::NotFound, &handler);
        assert_eq!(fields(&missing)[0], (":status".into(), "404".into()));
    }
}
