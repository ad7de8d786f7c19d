//! The HPACK Huffman code (RFC 7541 §5.2, Appendix B): 256 octets and EOS.
//!
//! The code is canonical: within a length, codes count up in symbol order,
//! and each length starts where the shorter ones ended, shifted. So the
//! table below holds only each symbol's length (Appendix B's "len in
//! bits" column); codes, the decoder's tables and the encoder's follow from
//! it at compile time. The test `the_code_is_appendix_b` checks the result
//! against codes printed in the RFC.

/// Code length in bits of every symbol, 0 to 255, then EOS (256).
#[rustfmt::skip]
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
     6, 10, 10, 12, 13,  6,  8, 11, 10, 10,  8, 11,  8,  6,  6,  6,
     5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8, 15,  6, 12, 10,
    13,  6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,
     7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  8, 13, 19, 13, 14,  6,
    15,  5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5,
     6,  7,  6,  5,  5,  6,  7,  7,  7,  7,  7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
];

const EOS: u16 = 256;
const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;

/// The canonical code: symbols sorted by (length, symbol), and per length
/// the first code and where its symbols start in that order.
struct Canonical {
    /// Every symbol's code, right-aligned.
    codes: [u32; 257],
    sorted: [u16; 257],
    /// Per length: the first code of that length and the index in
    /// `sorted` of its first symbol; `limit` the first code past them,
    /// left-aligned in 32 bits (u64, so 2^32 fits).
    first: [u32; MAX_LEN + 1],
    start: [u16; MAX_LEN + 1],
    limit: [u64; MAX_LEN + 1],
    /// Symbols of codes of at most 8 bits, by the 8 bits that begin with
    /// them: (symbol, length), length 0 for a longer code.
    short: [(u8, u8); 256],
}

const CODE: Canonical = canonical();

const fn canonical() -> Canonical {
    let mut c = Canonical {
        codes: [0; 257],
        sorted: [0; 257],
        first: [0; MAX_LEN + 1],
        start: [0; MAX_LEN + 1],
        limit: [0; MAX_LEN + 1],
        short: [(0, 0); 256],
    };
    let mut n = 0;
    let mut len = MIN_LEN;
    let mut code: u32 = 0;
    while len <= MAX_LEN {
        c.first[len] = code;
        c.start[len] = n as u16;
        let mut sym = 0;
        while sym < 257 {
            if LENGTHS[sym] as usize == len {
                c.codes[sym] = code;
                c.sorted[n] = sym as u16;
                n += 1;
                code += 1;
            }
            sym += 1;
        }
        c.limit[len] = (code as u64) << (32 - len);
        code <<= 1;
        len += 1;
    }
    let mut sym = 0;
    while sym < 256 {
        let len = LENGTHS[sym] as usize;
        if len <= 8 {
            let from = (c.codes[sym] << (8 - len)) as usize;
            let mut i = 0;
            while i < 1 << (8 - len) {
                c.short[from + i] = (sym as u8, len as u8);
                i += 1;
            }
        }
        sym += 1;
    }
    c
}

/// Why a Huffman string is not one (each a COMPRESSION_ERROR, §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol inside the string.
    Eos,
    /// The string ends in more than 7 bits of padding, or padding that is
    /// not the most significant bits of EOS (all ones).
    Padding,
}

impl HuffmanError {
    pub fn detail(self) -> &'static str {
        match self {
            HuffmanError::Eos => "Huffman string holds the EOS symbol",
            HuffmanError::Padding => "Huffman string padded with other than up to 7 one-bits",
        }
    }
}

/// Decodes `input`, appending the octets to `out`.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    // The next bits, left-aligned: `nbits` of them are real, the rest 0.
    let mut acc: u64 = 0;
    let mut nbits: usize = 0;
    let mut pos = 0;
    out.reserve(input.len() * 8 / 5 + 1);
    loop {
        // Refill: whole octets while there is room for one.
        if pos + 8 <= input.len() {
            let take = (63 - nbits) / 8;
            let word = u64::from_be_bytes(input[pos..pos + 8].try_into().expect("8 octets"));
            // The `take` first octets of `word`, placed after the real bits.
            acc |= (word >> (64 - 8 * take)) << (64 - nbits - 8 * take);
            nbits += 8 * take;
            pos += take;
        } else {
            while nbits <= 56 && pos < input.len() {
                acc |= u64::from(input[pos]) << (56 - nbits);
                nbits += 8;
                pos += 1;
            }
        }
        // With 30 bits or more every code is whole: no end to check.
        while nbits >= 30 {
            let (sym, len) = symbol((acc >> 32) as u32);
            if sym == EOS {
                return Err(HuffmanError::Eos);
            }
            out.push(sym as u8);
            acc <<= len;
            nbits -= len;
        }
        if pos < input.len() {
            continue;
        }
        // The input's end: what is left is symbols, then padding.
        loop {
            if nbits == 0 {
                return Ok(());
            }
            let (sym, len) = symbol((acc >> 32) as u32);
            if len > nbits {
                // Not a whole symbol: it must be padding, the start of
                // EOS (all ones) and shorter than an octet.
                let ones = (1u64 << nbits) - 1;
                return match nbits < 8 && acc >> (64 - nbits) == ones {
                    true => Ok(()),
                    false => Err(HuffmanError::Padding),
                };
            }
            if sym == EOS {
                return Err(HuffmanError::Eos);
            }
            out.push(sym as u8);
            acc <<= len;
            nbits -= len;
        }
    }
}

/// The symbol that `window` (32 bits, left-aligned) begins with, and its
/// code's length.
#[inline]
fn symbol(window: u32) -> (u16, usize) {
    let (sym, len) = CODE.short[(window >> 24) as usize];
    if len != 0 {
        return (u16::from(sym), usize::from(len));
    }
    let w = u64::from(window);
    let mut len = 9;
    while len < MAX_LEN && w >= CODE.limit[len] {
        len += 1;
    }
    let index = CODE.start[len] as usize + ((window >> (32 - len)) - CODE.first[len]) as usize;
    // Past the last code (window all ones beyond EOS's 30 bits cannot be:
    // EOS is 30 ones), the index stays within the table.
    (CODE.sorted[index.min(256)], len)
}

/// The octets `input` takes Huffman-coded.
pub fn encoded_len(input: &[u8]) -> usize {
    let bits: usize = input
        .iter()
        .map(|&b| usize::from(LENGTHS[b as usize]))
        .sum();
    bits.div_ceil(8)
}

/// Appends `input` Huffman-coded, padded with ones (§5.2).
pub fn encode(input: &[u8], out: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut nbits = 0;
    for &b in input {
        let len = usize::from(LENGTHS[b as usize]);
        acc = (acc << len) | u64::from(CODE.codes[b as usize]);
        nbits += len;
        while nbits >= 8 {
            nbits -= 8;
            out.push((acc >> nbits) as u8);
        }
        acc &= (1 << nbits) - 1;
    }
    if nbits > 0 {
        out.push(((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes printed in Appendix B, one per length class and the ends.
    #[test]
    fn the_code_is_appendix_b() {
        let printed: [(u16, u32, u8); 12] = [
            (0, 0x1ff8, 13),
            (b'0' as u16, 0x0, 5),
            (b'a' as u16, 0x3, 5),
            (b' ' as u16, 0x14, 6),
            (b':' as u16, 0x5c, 7),
            (b'&' as u16, 0xf8, 8),
            (b'!' as u16, 0x3f8, 10),
            (b'<' as u16, 0x7ffc, 15),
            (b'\\' as u16, 0x7fff0, 19),
            (255, 0x3ffffee, 26),
            (10, 0x3ffffffc, 30),
            (EOS, 0x3fffffff, 30),
        ];
        for (sym, code, len) in printed {
            assert_eq!(
                (CODE.codes[sym as usize], LENGTHS[sym as usize]),
                (code, len),
                "symbol {sym}"
            );
        }
        // A complete prefix code: the lengths fill the code space exactly.
        let kraft: u64 = LENGTHS.iter().map(|&l| 1u64 << (30 - l)).sum();
        assert_eq!(kraft, 1 << 30);
    }

    /// RFC 7541 Appendix C.4 and C.6: strings and their Huffman codes.
    #[test]
    fn rfc_examples_decode_and_encode() {
        let examples: [(&str, &str); 6] = [
            ("www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"),
            ("no-cache", "a8eb10649cbf"),
            ("custom-key", "25a849e95ba97d7f"),
            ("custom-value", "25a849e95bb8e8b4bf"),
            ("302", "6402"),
            (
                "Mon, 21 Oct 2013 20:13:21 GMT",
                "d07abe941054d444a8200595040b8166e082a62d1bff",
            ),
        ];
        for (text, hex) in examples {
            let code: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let mut out = Vec::new();
            decode(&code, &mut out).unwrap();
            assert_eq!(out, text.as_bytes());
            let mut enc = Vec::new();
            encode(text.as_bytes(), &mut enc);
            assert_eq!(enc, code, "{text}");
            assert_eq!(encoded_len(text.as_bytes()), code.len());
        }
    }

    /// Every octet alone and after each other length of prefix decodes
    /// back (every code, at every bit alignment).
    #[test]
    fn every_code_round_trips_at_every_alignment() {
        for sym in 0..=255u8 {
            for prefix in 0..8 {
                let text: Vec<u8> = std::iter::repeat_n(b'0', prefix).chain([sym]).collect();
                let mut code = Vec::new();
                encode(&text, &mut code);
                let mut out = Vec::new();
                decode(&code, &mut out).unwrap();
                assert_eq!(out, text);
            }
        }
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // "a" is 00011: padded with 3 ones is right; with zeros is not.
        let mut out = Vec::new();
        assert_eq!(decode(&[0b0001_1111], &mut out), Ok(()));
        assert_eq!(out, b"a");
        assert_eq!(
            decode(&[0b0001_1000], &mut Vec::new()),
            Err(HuffmanError::Padding)
        );
        // A whole octet of ones after a full symbol: padding over 7 bits.
        assert_eq!(
            decode(&[0b0001_1111, 0xff], &mut Vec::new()),
            Err(HuffmanError::Padding)
        );
        // Exactly 8 ones and nothing else: padding of 8 bits, one too many.
        assert_eq!(decode(&[0xff], &mut Vec::new()), Err(HuffmanError::Padding));
        // EOS, 30 ones, then two ones of padding.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new()),
            Err(HuffmanError::Eos)
        );
        // An empty string is empty.
        assert_eq!(decode(&[], &mut Vec::new()), Ok(()));
    }
}
