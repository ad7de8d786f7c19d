//! The HPACK decoder (RFC 7541 §3, §6): one header block to its fields, in
//! order, through a callback, so that nothing is kept of a field the
//! caller does not keep. It allocates nothing per block once its scratch
//! buffer (Huffman strings) and its dynamic table have grown to the
//! largest string and table the peer used.

use super::huffman;
use super::table::{DynamicTable, STATIC};

/// Why a header block cannot be decoded: each is a connection error of
/// type COMPRESSION_ERROR (RFC 9113 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub &'static str);

/// The largest integer a block may carry (sizes, lengths and indexes):
/// anything past it is past every limit we keep.
const MAX_INT: u64 = u32::MAX as u64;

/// What a Huffman scratch buffer may keep between blocks.
const KEEP_SCRATCH: usize = 4096;

/// A connection's decoder.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// Our SETTINGS_HEADER_TABLE_SIZE: no size update may go past it.
    limit: usize,
    /// Huffman-decoded strings of the field being decoded.
    scratch: Vec<u8>,
}

/// What is known of a field before its caller looks at it: its name, its
/// value, or both, are ones the caller already accepted (the static
/// table's, or a dynamic entry's that the caller's verdict marked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub name: bool,
    pub value: bool,
}

impl Known {
    pub const BOTH: Known = Known {
        name: true,
        value: true,
    };
    pub const NOTHING: Known = Known {
        name: false,
        value: false,
    };
}

/// Where a decoded string is: in the block itself, in the scratch buffer,
/// or in a table.
#[derive(Debug, Clone, Copy)]
enum Str {
    Block(usize, usize),
    Scratch(usize, usize),
    Static(usize),
    Dynamic(usize),
}

impl Decoder {
    /// A decoder whose dynamic table may hold `limit` octets (our
    /// SETTINGS_HEADER_TABLE_SIZE; 4,096 unless we said otherwise).
    pub fn new(limit: usize) -> Self {
        Self {
            table: DynamicTable::new(limit),
            limit,
            scratch: Vec::new(),
        }
    }

    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Decodes one whole header block (a HEADERS frame's fragment and its
    /// CONTINUATIONs', joined), calling `field(name, value)` for each field
    /// in order. On error, the fields before it have been given and the
    /// connection must end: its table can no longer be trusted.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        self.decode_known(block, |n, v, _| {
            field(n, v);
            false
        })
    }

    /// [`Decoder::decode`], telling `field` what is known of each field
    /// before it looks: its name or value is the static table's, or the
    /// field is a dynamic entry for which `field` said `true` when it was
    /// inserted. `field`'s answer for a field that is inserted is kept
    /// with its entry: a caller that checks fields (the mini engine)
    /// checks an entry's octets once, not at every reference to it.
    pub fn decode_known(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8], Known) -> bool,
    ) -> Result<(), DecodeError> {
        let mut pos = 0;
        // Size updates come first, or not at all (§4.2).
        let mut updates_allowed = true;
        while pos < block.len() {
            let b = block[pos];
            if b & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = int(block, &mut pos, 7)?;
                let (name, value) = self.entry(index)?;
                let known = match index <= STATIC.len() {
                    true => Known::BOTH,
                    false => match self.table.verdict(index - STATIC.len() - 1) {
                        true => Known::BOTH,
                        false => Known::NOTHING,
                    },
                };
                field(name, value, known);
                updates_allowed = false;
                continue;
            }
            if b & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                if !updates_allowed {
                    return Err(DecodeError(
                        "dynamic table size update after the block's first field",
                    ));
                }
                let size = int(block, &mut pos, 5)?;
                if size > self.limit {
                    return Err(DecodeError(
                        "dynamic table size update past SETTINGS_HEADER_TABLE_SIZE",
                    ));
                }
                self.table.set_max_size(size);
                continue;
            }
            updates_allowed = false;
            // A literal (§6.2): with incremental indexing (01), without
            // (0000) or never indexed (0001).
            let indexing = b & 0x40 != 0;
            let index = int(block, &mut pos, if indexing { 6 } else { 4 })?;
            self.scratch.clear();
            let mut name = match index {
                0 => string(block, &mut pos, &mut self.scratch)?,
                i if i <= STATIC.len() => Str::Static(i - 1),
                i if i - STATIC.len() <= self.table.len() => Str::Dynamic(i - STATIC.len() - 1),
                _ => return Err(DecodeError("literal's name index past both tables")),
            };
            let value = string(block, &mut pos, &mut self.scratch)?;
            let known = Known {
                name: match name {
                    Str::Static(_) => true,
                    Str::Dynamic(i) => self.table.verdict(i),
                    _ => false,
                },
                value: false,
            };
            if indexing {
                // The name may be evicted by the insertion itself (§4.4):
                // copied first.
                if let Str::Dynamic(i) = name {
                    let start = self.scratch.len();
                    let n = self.table.get(i).map_or(&[][..], |e| e.0);
                    self.scratch.extend_from_slice(n);
                    name = Str::Scratch(start, self.scratch.len());
                }
            }
            let verdict = field(
                resolve(name, block, &self.scratch, Some(&self.table)),
                resolve(value, block, &self.scratch, Some(&self.table)),
                known,
            );
            if indexing {
                // Neither is in the table (a dynamic name was copied).
                let name = resolve(name, block, &self.scratch, None);
                let value = resolve(value, block, &self.scratch, None);
                self.table.insert_with(name, value, verdict);
            }
        }
        if self.scratch.capacity() > KEEP_SCRATCH {
            self.scratch = Vec::new();
        }
        Ok(())
    }

    /// Entry `index` of the two tables (1 is the first static entry).
    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
        match index {
            0 => Err(DecodeError("indexed field with index 0")),
            i if i <= STATIC.len() => Ok(STATIC[i - 1]),
            i => self
                .table
                .get(i - STATIC.len() - 1)
                .ok_or(DecodeError("indexed field past both tables")),
        }
    }
}

fn resolve<'a>(
    s: Str,
    block: &'a [u8],
    scratch: &'a [u8],
    table: Option<&'a DynamicTable>,
) -> &'a [u8] {
    match s {
        Str::Block(a, b) => &block[a..b],
        Str::Scratch(a, b) => &scratch[a..b],
        Str::Static(i) => STATIC[i].0,
        Str::Dynamic(i) => table.and_then(|t| t.get(i)).map_or(&[][..], |e| e.0),
    }
}

/// An integer with an `n`-bit prefix at `block[*pos]` (§5.1); `pos` moves
/// past it.
fn int(block: &[u8], pos: &mut usize, n: u8) -> Result<usize, DecodeError> {
    let max = (1u64 << n) - 1;
    let mut value = u64::from(block[*pos]) & max;
    *pos += 1;
    if value < max {
        return Ok(value as usize);
    }
    let mut shift = 0;
    loop {
        let Some(&b) = block.get(*pos) else {
            return Err(DecodeError("header block ends inside an integer"));
        };
        *pos += 1;
        value += u64::from(b & 0x7f) << shift;
        if value > MAX_INT {
            return Err(DecodeError("integer past 2^32-1 in a header block"));
        }
        if b & 0x80 == 0 {
            return Ok(value as usize);
        }
        shift += 7;
    }
}

/// A string literal (§5.2) at `block[*pos]`: raw, it stays where it is;
/// Huffman-coded, it is decoded onto the end of `scratch`.
fn string(block: &[u8], pos: &mut usize, scratch: &mut Vec<u8>) -> Result<Str, DecodeError> {
    let Some(&first) = block.get(*pos) else {
        return Err(DecodeError("header block ends before a string"));
    };
    let len = int(block, pos, 7)?;
    let start = *pos;
    if len > block.len() - start {
        return Err(DecodeError("string longer than what is left of the block"));
    }
    *pos += len;
    if first & 0x80 == 0 {
        return Ok(Str::Block(start, start + len));
    }
    let from = scratch.len();
    huffman::decode(&block[start..start + len], scratch).map_err(|e| DecodeError(e.detail()))?;
    Ok(Str::Scratch(from, scratch.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
        let mut fields = Vec::new();
        d.decode(block, |n, v| {
            fields.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })?;
        Ok(fields)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// RFC 7541 C.3 and C.4: three requests on one connection, without and
    /// with Huffman coding; the table's size after each.
    #[test]
    fn rfc_7541_c3_and_c4() {
        for blocks in [
            [
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "8286 84be 5808 6e6f 2d63 6163 6865",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            ],
            [
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                "8286 84be 5886 a8eb 1064 9cbf",
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ],
        ] {
            let mut d = Decoder::new(4096);
            let first = decode(&mut d, &hex(blocks[0])).unwrap();
            assert_eq!(
                first,
                pairs(&[
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                    (":authority", "www.example.com")
                ])
            );
            assert_eq!(d.table().size(), 57);
            let second = decode(&mut d, &hex(blocks[1])).unwrap();
            assert_eq!(
                second.last().unwrap(),
                &pairs(&[("cache-control", "no-cache")])[0]
            );
            assert_eq!(second[3], pairs(&[(":authority", "www.example.com")])[0]);
            assert_eq!(d.table().size(), 110);
            let third = decode(&mut d, &hex(blocks[2])).unwrap();
            assert_eq!(
                third,
                pairs(&[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":path", "/index.html"),
                    (":authority", "www.example.com"),
                    ("custom-key", "custom-value")
                ])
            );
            assert_eq!(d.table().size(), 164);
        }
    }

    /// RFC 7541 C.5: responses with a 256-octet table, so that entries are
    /// evicted as they come.
    #[test]
    fn rfc_7541_c5_evictions() {
        let mut d = Decoder::new(256);
        decode(
            &mut d,
            &hex("4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
        )
        .unwrap();
        assert_eq!(d.table().size(), 222);
        let second = decode(&mut d, &hex("4803 3330 37c1 c0bf")).unwrap();
        assert_eq!(second[0], pairs(&[(":status", "307")])[0]);
        assert_eq!(
            second[3],
            pairs(&[("location", "https://www.example.com")])[0]
        );
        assert_eq!(d.table().size(), 222);
        let third = decode(
            &mut d,
            &hex("88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31"),
        )
        .unwrap();
        assert_eq!(third.len(), 6);
        assert_eq!(third[5].0, "set-cookie");
        assert_eq!(d.table().size(), 215);
        assert_eq!(d.table().len(), 3);
    }

    /// h2spec's HPACK cases and the rest of §5–§6's errors.
    #[test]
    fn malformed_blocks_are_refused() {
        let cases: [(&str, &str); 10] = [
            ("80", "indexed field with index 0"),
            ("be", "indexed field past both tables"),
            ("7f00 0161", "literal's name index past both tables"),
            (
                "8220",
                "dynamic table size update after the block's first field",
            ),
            (
                "3fe2 1f",
                "dynamic table size update past SETTINGS_HEADER_TABLE_SIZE",
            ),
            (
                "0082 1fff 0161",
                "Huffman string padded with other than up to 7 one-bits",
            ),
            (
                "0081 18 0161",
                "Huffman string padded with other than up to 7 one-bits",
            ),
            ("0084 ffff ffff 0161", "Huffman string holds the EOS symbol"),
            ("0005 61", "string longer than what is left of the block"),
            ("ff ff ff ff ff 0f", "integer past 2^32-1 in a header block"),
        ];
        for (block, why) in cases {
            let err = decode(&mut Decoder::new(4096), &hex(block)).unwrap_err();
            assert_eq!(err, DecodeError(why), "{block}");
        }
        // 2^32-1 exactly is an integer (an index past the tables here);
        // one more is not.
        let max = "ff 80 ff ff ff 0f";
        let err = decode(&mut Decoder::new(4096), &hex(max)).unwrap_err();
        assert_eq!(err, DecodeError("indexed field past both tables"), "{max}");
        let past = "ff 81 ff ff ff 0f";
        let err = decode(&mut Decoder::new(4096), &hex(past)).unwrap_err();
        assert_eq!(
            err,
            DecodeError("integer past 2^32-1 in a header block"),
            "{past}"
        );
        for block in ["ff", "ff80", "00", "0001"] {
            assert!(
                decode(&mut Decoder::new(4096), &hex(block)).is_err(),
                "{block}"
            );
        }
        // Size updates at the start are fine, and 0 empties the table.
        let mut d = Decoder::new(4096);
        decode(&mut d, &hex("4001 6101 62")).unwrap();
        assert_eq!(d.table().len(), 1);
        assert_eq!(decode(&mut d, &hex("20 3fe1 1f 82")).unwrap().len(), 1);
        assert_eq!(d.table().len(), 0);
        assert_eq!(d.table().max_size(), 4096);
    }

    /// A name index one past the dynamic table, whatever its size, is an
    /// error, not an empty name.
    #[test]
    fn a_name_index_past_the_dynamic_table_is_refused() {
        let mut d = Decoder::new(4096);
        decode(&mut d, &hex("4001 6101 62")).unwrap(); // one entry: 62
                                                       // 0x7f 0x01: index 64 (63 + 1) with indexing: past 62.
        assert_eq!(
            decode(&mut d, &hex("7f01 0178")),
            Err(DecodeError("literal's name index past both tables"))
        );
        assert_eq!(
            decode(&mut d, &hex("7e 0178")).unwrap(),
            pairs(&[("a", "x")])
        );
    }

    /// A Huffman string past 4 KiB leaves no scratch buffer behind; a
    /// small one keeps its buffer for the next block.
    #[test]
    fn the_scratch_buffer_is_kept_small() {
        let mut d = Decoder::new(4096);
        let mut small = vec![0x00, 0x81, 0x1f, 0x81, 0x1f]; // "a": "a"
        decode(&mut d, &small).unwrap();
        assert!(d.scratch.capacity() > 0, "kept");
        let mut code = Vec::new();
        super::huffman::encode(&[b'a'; 10_000], &mut code);
        let mut big = vec![0x00, 0x81, 0x1f];
        super::super::encode::int(&mut big, 0x80, 7, code.len());
        big.extend_from_slice(&code);
        decode(&mut d, &big).unwrap();
        assert_eq!(d.scratch.capacity(), 0, "dropped");
        small.truncate(5);
        decode(&mut d, &small).unwrap();
    }

    /// A literal with indexing whose name is the entry it evicts (§4.4).
    #[test]
    fn a_new_entry_may_name_the_entry_it_evicts() {
        let mut d = Decoder::new(100);
        // "aaaa: 1111" (40), then a size-60 table of one entry, then a new
        // entry named by index 62 (that entry) with a 20-octet value.
        decode(&mut d, &hex("4004 6161 6161 0431 3131 31")).unwrap();
        let fields = decode(
            &mut d,
            &hex("3f1d 7e14 7878 7878 7878 7878 7878 7878 7878 7878 7878 7878"),
        )
        .unwrap();
        assert_eq!(fields, pairs(&[("aaaa", "xxxxxxxxxxxxxxxxxxxx")]));
        assert_eq!(
            d.table().get(0),
            Some((&b"aaaa"[..], &b"xxxxxxxxxxxxxxxxxxxx"[..]))
        );
        assert_eq!(d.table().len(), 1);
    }
}
