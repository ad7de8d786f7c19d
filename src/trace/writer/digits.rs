//! Decimal numbers into byte buffers, by hand: `core::fmt` was most of the
//! writer's cost.

/// Decimal digits of `n`.
pub(super) fn num(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Nanoseconds as microseconds with three decimals, as Chrome traces want.
pub(super) fn micros(out: &mut Vec<u8>, ns: u64) {
    num(out, ns / 1000);
    let r = (ns % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (r / 100) as u8,
        b'0' + (r / 10 % 10) as u8,
        b'0' + (r % 10) as u8,
    ]);
}
