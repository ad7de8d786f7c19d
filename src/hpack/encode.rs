//! HPACK encoding (RFC 7541 §5–§6), the parts our two ends send: integers,
//! strings raw or Huffman-coded, indexed fields, literals with or without
//! indexing, and an encoder with a dynamic table for the load client's
//! realistic requests.

use super::huffman;
use super::table::{DynamicTable, STATIC};

/// An integer with an `n`-bit prefix after the bits `first` (§5.1).
pub fn int(out: &mut Vec<u8>, first: u8, n: u8, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A string literal (§5.2), Huffman-coded when that is shorter.
pub fn string(out: &mut Vec<u8>, s: &[u8], huffman: bool) {
    let coded = huffman::encoded_len(s);
    if huffman && coded < s.len() {
        int(out, 0x80, 7, coded);
        huffman::encode(s, out);
    } else {
        int(out, 0x00, 7, s.len());
        out.extend_from_slice(s);
    }
}

/// An indexed field (§6.1).
pub fn indexed(out: &mut Vec<u8>, index: usize) {
    int(out, 0x80, 7, index);
}

/// A literal without indexing whose name is entry `name` of the tables
/// (§6.2.2), its value raw.
pub fn literal(out: &mut Vec<u8>, name: usize, value: &[u8]) {
    int(out, 0x00, 4, name);
    string(out, value, false);
}

/// A connection's encoder with a dynamic table (for the load client's
/// header sets: what repeats goes as one octet after the first request).
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    huffman: bool,
    /// A size update the next block must begin with (§4.2).
    update: Option<usize>,
}

impl Encoder {
    /// An encoder whose table holds `size` octets (at most the peer's
    /// SETTINGS_HEADER_TABLE_SIZE); `huffman` codes strings when shorter.
    pub fn new(size: usize, huffman: bool) -> Self {
        Self {
            table: DynamicTable::new(size),
            huffman,
            update: None,
        }
    }

    /// The table may hold `size` octets from the next block on (the peer
    /// changed its SETTINGS_HEADER_TABLE_SIZE): a size update starts it.
    pub fn resize(&mut self, size: usize) {
        if size != self.table.max_size() {
            self.table.set_max_size(size);
            self.update = Some(size);
        }
    }

    /// Appends `fields` as one header block: each a whole-entry match
    /// (indexed), else a literal with incremental indexing whose name is
    /// indexed when a table has it.
    pub fn encode<'a>(
        &mut self,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        out: &mut Vec<u8>,
    ) {
        if let Some(size) = self.update.take() {
            int(out, 0x20, 5, size);
        }
        for (name, value) in fields {
            let (whole, named) = self.find(name, value);
            if let Some(i) = whole {
                indexed(out, i);
                continue;
            }
            match named {
                Some(i) => int(out, 0x40, 6, i),
                None => {
                    out.push(0x40);
                    string(out, name, self.huffman);
                }
            }
            string(out, value, self.huffman);
            self.table.insert(name, value);
        }
    }

    /// The index of an entry equal to the field, and of one with its name.
    fn find(&self, name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
        let mut named = None;
        for (i, &(n, v)) in STATIC.iter().enumerate() {
            if n == name {
                if v == value {
                    return (Some(i + 1), None);
                }
                named.get_or_insert(i + 1);
            }
        }
        for i in 0..self.table.len() {
            let Some((n, v)) = self.table.get(i) else {
                break;
            };
            if n == name {
                if v == value {
                    return (Some(STATIC.len() + 1 + i), None);
                }
                named.get_or_insert(STATIC.len() + 1 + i);
            }
        }
        (None, named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_of(s: &[u8], huffman: bool) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, s, huffman);
        out
    }

    /// Huffman only when strictly shorter: RFC 7541 C.4.1's string is
    /// coded; "XZ" (two 8-bit codes) is as long coded as raw, and goes raw.
    #[test]
    fn a_string_is_coded_only_when_shorter() {
        assert_eq!(
            string_of(b"www.example.com", true),
            [0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]
        );
        assert_eq!(huffman::encoded_len(b"XZ"), 2);
        assert_eq!(string_of(b"XZ", true), [0x02, b'X', b'Z']);
        assert_eq!(string_of(b"www.example.com", false)[0], 15);
    }

    /// A new table size is said once, at the start of the next block; the
    /// size the table has already is not said.
    #[test]
    fn a_resize_starts_the_next_block_once() {
        let mut e = Encoder::new(4096, false);
        let mut block = Vec::new();
        e.resize(4096);
        e.encode([(&b":method"[..], &b"GET"[..])], &mut block);
        assert_eq!(block, [0x82], "no update for the same size");
        e.resize(100);
        let mut block = Vec::new();
        e.encode([(&b":method"[..], &b"GET"[..])], &mut block);
        // 001 and 100 with a 5-bit prefix: 31, then 69.
        assert_eq!(block, [0x3f, 0x45, 0x82]);
        let mut block = Vec::new();
        e.encode([(&b":method"[..], &b"GET"[..])], &mut block);
        assert_eq!(block, [0x82], "said once");
    }
}
