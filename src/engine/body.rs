//! The response body (`serve --body SIZE`): `Hello World\n` repeated and
//! cut at SIZE octets, so that 12 (the default) is the seed's answer and
//! any body is checkable octet by octet without being stored: octet `i` is
//! `PATTERN[i % 12]`. Both engines send it, the load client checks it.

use std::sync::OnceLock;

/// One period of the body.
pub const PATTERN: &[u8; 12] = b"Hello World\n";

/// The largest body `--body` takes.
pub const MAX_BODY: u64 = 64 << 20;

/// Octets of the pattern kept ready to copy from, at every phase: a slice
/// of [`repeated`] from `offset % 12` holds the body from `offset` on.
const REPEATED_LEN: usize = 64 * 1024 + PATTERN.len();

/// The body's size; the content follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Body(u64);

impl Default for Body {
    fn default() -> Self {
        Body::SEED
    }
}

impl Body {
    /// The seed's answer, `Hello World\n`: the default.
    pub const SEED: Body = Body(PATTERN.len() as u64);

    /// A body of `len` octets (at most [`MAX_BODY`]).
    pub fn new(len: u64) -> Option<Body> {
        (len <= MAX_BODY).then_some(Body(len))
    }

    pub fn len(self) -> u64 {
        self.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Appends the body's octets `offset..offset + n` to `out`.
    pub fn append(offset: u64, n: usize, out: &mut Vec<u8>) {
        let mut at = offset;
        let mut left = n;
        while left > 0 {
            let piece = chunk(at, left);
            out.extend_from_slice(piece);
            at += piece.len() as u64;
            left -= piece.len();
        }
    }

    /// Whether `data` is the body's content from `offset` on.
    pub fn matches(offset: u64, data: &[u8]) -> bool {
        let mut at = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let piece = chunk(at, rest.len());
            if rest[..piece.len()] != *piece {
                return false;
            }
            at += piece.len() as u64;
            rest = &rest[piece.len()..];
        }
        true
    }
}

/// The body from `offset` on, at most `n` octets (at most 64 KiB at once).
pub fn chunk(offset: u64, n: usize) -> &'static [u8] {
    let phase = (offset % PATTERN.len() as u64) as usize;
    let all = repeated();
    &all[phase..phase + n.min(REPEATED_LEN - PATTERN.len())]
}

/// The pattern repeated over [`REPEATED_LEN`] octets, built once.
pub fn repeated() -> &'static [u8] {
    static REPEATED: OnceLock<Box<[u8]>> = OnceLock::new();
    REPEATED.get_or_init(|| PATTERN.iter().copied().cycle().take(REPEATED_LEN).collect())
}

impl std::str::FromStr for Body {
    type Err = String;

    /// Octets, with a unit or without: `12`, `0`, `512B`, `64KiB`, `1MiB`
    /// (at most 64MiB); the form [`Body`]'s `Display` writes.
    fn from_str(text: &str) -> Result<Body, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            _ => {
                return Err(format!(
                    "'{text}' is not a body size (octets, or a number with B, KiB or MiB)"
                ))
            }
        };
        let n: u64 = number.parse().map_err(|_| {
            format!("'{text}' is not a body size (octets, or a number with B, KiB or MiB)")
        })?;
        n.checked_mul(scale)
            .and_then(Body::new)
            .ok_or_else(|| format!("'{text}' is larger than the largest body, 64MiB"))
    }
}

impl std::fmt::Display for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            n if n > 0 && n % (1 << 20) == 0 => write!(f, "{}MiB", n >> 20),
            n if n > 0 && n % (1 << 10) == 0 => write!(f, "{}KiB", n >> 10),
            n => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_back() {
        assert_eq!("12".parse(), Ok(Body(12)));
        assert_eq!("0".parse(), Ok(Body(0)));
        assert_eq!("512B".parse(), Ok(Body(512)));
        assert_eq!("64KiB".parse(), Ok(Body(64 << 10)));
        assert_eq!("64MiB".parse(), Ok(Body(64 << 20)));
        for len in [0, 1, 12, 1000, 1024, 16 << 10, 1 << 20, 3 << 20, 64 << 20] {
            let b = Body(len);
            assert_eq!(b.to_string().parse(), Ok(b), "{b}");
        }
        assert_eq!(Body(1 << 20).to_string(), "1MiB");
        for bad in [
            "",
            "x",
            "1GiB",
            "65MiB",
            "1.5MiB",
            "-1",
            "1 KB",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Body>().is_err(), "{bad}");
        }
        assert!("65MiB".parse::<Body>().unwrap_err().contains("64MiB"));
    }

    #[test]
    fn the_default_is_the_seeds_answer() {
        let mut out = Vec::new();
        Body::append(0, Body::default().len() as usize, &mut out);
        assert_eq!(out, b"Hello World\n");
    }

    /// Pieces appended from any offset make the same octets as the whole,
    /// and each matches at its offset and nowhere else.
    #[test]
    fn pieces_make_the_whole_and_are_checked() {
        let len = 200_000usize;
        let whole: Vec<u8> = PATTERN.iter().copied().cycle().take(len).collect();
        let mut pieced = Vec::new();
        let mut at = 0;
        for n in [1, 11, 12, 13, 70_000, 65_536, 5].iter().cycle() {
            let n = (*n).min(len - at);
            Body::append(at as u64, n, &mut pieced);
            assert!(Body::matches(at as u64, &whole[at..at + n]));
            if n > 0 && at + 1 + n <= len && whole[at..at + n] != whole[at + 1..at + 1 + n] {
                assert!(!Body::matches(at as u64 + 1, &whole[at..at + n]));
            }
            at += n;
            if at == len {
                break;
            }
        }
        assert_eq!(pieced, whole);
        let mut bad = whole[..100].to_vec();
        bad[50] ^= 1;
        assert!(!Body::matches(0, &bad));
    }
}
