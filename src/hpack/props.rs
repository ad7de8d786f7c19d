//! Property tests: our decoder against an independent encoder
//! (`httlib-hpack`) on random header lists, with every representation,
//! Huffman on and off, evictions and size updates; and our own encoder
//! round-tripping through our decoder.

use proptest::prelude::*;

use super::table::STATIC;
use super::{Decoder, Encoder};

/// A field: a name from the static table or made up, any octets as value
/// (so that every Huffman code turns up), and how to send it.
fn field() -> impl Strategy<Value = Field> {
    let name = prop_oneof![
        (0..STATIC.len()).prop_map(|i| STATIC[i].0.to_vec()),
        proptest::collection::vec(b'a'..=b'z', 1..12),
    ];
    let value = prop_oneof![
        (0..STATIC.len()).prop_map(|i| STATIC[i].1.to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(b'a'..=b'f', 0..300),
    ];
    // httlib's flags: 1 Huffman name, 2 Huffman value, 4 with indexing,
    // 8 never indexed, 16 the best representation (indexed when it can).
    (name, value, 0u8..32)
}

/// A field as [`field`] makes it: name, value, httlib's flags.
type Field = (Vec<u8>, Vec<u8>, u8);

/// Blocks of fields, each maybe after a size update.
fn blocks() -> impl Strategy<Value = Vec<(Option<u32>, Vec<Field>)>> {
    let update = proptest::option::weighted(0.2, 0u32..=4096);
    proptest::collection::vec((update, proptest::collection::vec(field(), 0..20)), 1..12)
}

proptest! {
    #[test]
    fn decodes_what_an_independent_encoder_wrote(blocks in blocks()) {
        let mut theirs = httlib_hpack::Encoder::with_dynamic_size(4096);
        let mut ours = Decoder::new(4096);
        for (update, fields) in blocks {
            let mut block = Vec::new();
            if let Some(size) = update {
                theirs.update_max_dynamic_size(size, &mut block).unwrap();
            }
            for (name, value, flags) in &fields {
                // Never-indexed and with-indexing together mean nothing.
                let flags = if flags & 8 != 0 { flags & !4 } else { *flags };
                theirs.encode((name.clone(), value.clone(), flags), &mut block).unwrap();
            }
            let mut got = Vec::new();
            ours.decode(&block, |n, v| got.push((n.to_vec(), v.to_vec()))).unwrap();
            let want: Vec<_> = fields.into_iter().map(|(n, v, _)| (n, v)).collect();
            prop_assert_eq!(got, want);
            prop_assert!(ours.table().size() <= ours.table().max_size());
        }
    }

    #[test]
    fn our_encoder_round_trips(blocks in blocks(), huffman: bool, size in 0usize..=4096) {
        let mut enc = Encoder::new(size, huffman);
        let mut dec = Decoder::new(4096);
        let mut first = true;
        for (_, fields) in blocks {
            let mut block = Vec::new();
            if first {
                super::encode::int(&mut block, 0x20, 5, size);
                first = false;
            }
            enc.encode(fields.iter().map(|(n, v, _)| (&n[..], &v[..])), &mut block);
            let mut got = Vec::new();
            dec.decode(&block, |n, v| got.push((n.to_vec(), v.to_vec()))).unwrap();
            let want: Vec<_> = fields.into_iter().map(|(n, v, _)| (n, v)).collect();
            prop_assert_eq!(got, want);
        }
    }

    /// Any octets: an error or fields, never a panic, and the table within
    /// its limit.
    #[test]
    fn arbitrary_blocks_never_panic(block in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut d = Decoder::new(4096);
        let _ = d.decode(&block, |_, _| {});
        prop_assert!(d.table().size() <= 4096);
    }
}
