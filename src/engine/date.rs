//! The `date` field of every response (RFC 9110 §6.6.1: an origin server
//! with a clock sends it in every 2xx), as IMF-fixdate text, formatted at
//! most once a second. Sans-IO: the caller gives the time.

use crate::wall_clock::civil;

/// `Sun, 06 Nov 1994 08:49:37 GMT`: always 29 octets.
pub const DATE_LEN: usize = 29;

/// The text of one second, kept until the second changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpDate {
    secs: u64,
    text: [u8; DATE_LEN],
}

impl Default for HttpDate {
    fn default() -> Self {
        Self::at(0)
    }
}

impl HttpDate {
    /// The date of `secs` seconds since the Unix epoch.
    pub fn at(secs: u64) -> Self {
        Self {
            secs,
            text: format(secs),
        }
    }

    /// Moves to `secs`; returns whether the text changed (it is formatted
    /// again only then).
    pub fn set(&mut self, secs: u64) -> bool {
        if secs == self.secs {
            return false;
        }
        *self = Self::at(secs);
        true
    }

    pub fn text(&self) -> &[u8; DATE_LEN] {
        &self.text
    }
}

fn format(secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil(days as i64);
    let mut t = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    t[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    let two = |t: &mut [u8; DATE_LEN], at: usize, n: u64| {
        t[at] = b'0' + (n / 10 % 10) as u8;
        t[at + 1] = b'0' + (n % 10) as u8;
    };
    two(&mut t, 5, day as u64);
    t[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    let year = year.clamp(0, 9999) as u64;
    two(&mut t, 12, year / 100);
    two(&mut t, 14, year % 100);
    two(&mut t, 17, rem / 3600);
    two(&mut t, 20, rem / 60 % 60);
    two(&mut t, 23, rem % 60);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(HttpDate::at(0).text(), b"Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110 §5.6.7's example.
        assert_eq!(
            HttpDate::at(784_111_777).text(),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            HttpDate::at(951_782_400).text(),
            b"Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            HttpDate::at(1_796_677_199).text(),
            b"Mon, 07 Dec 2026 20:59:59 GMT"
        );
    }

    #[test]
    fn the_text_changes_only_with_the_second() {
        let mut d = HttpDate::at(10);
        assert!(!d.set(10));
        assert!(d.set(11));
        assert_eq!(d.text(), b"Thu, 01 Jan 1970 00:00:11 GMT");
    }
}
