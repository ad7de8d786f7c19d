//! HPACK's two tables (RFC 7541 §2.3): the static table of Appendix A and
//! a connection's dynamic table, kept without an allocation per entry.

use std::collections::VecDeque;

/// RFC 7541 Appendix A: index 1 to 61.
pub const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// What an entry adds to a table's size beyond its octets (§4.1).
pub const ENTRY_OVERHEAD: usize = 32;

/// A dynamic table (§2.3.2, §4): entries in insertion order, evicted
/// oldest first to stay within the table's maximum size. Their octets
/// live in one buffer, appended at its end and dropped from its front in
/// bulk, so that an insertion allocates nothing once the buffer has grown
/// to at most four times the largest size the table was allowed (live
/// and evicted octets at most twice it, and a Vec's doubling).
#[derive(Debug, Default)]
pub struct DynamicTable {
    bytes: Vec<u8>,
    /// Newest first: where each entry starts in `bytes`, its name's and
    /// value's lengths.
    entries: VecDeque<Entry>,
    /// The sum of the entries' sizes (octets plus 32 each).
    size: usize,
    /// The maximum size now (the last size update, or the initial one).
    max: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: usize,
    name: usize,
    value: usize,
    /// The decoder's caller's verdict on the field when it was inserted
    /// ([`super::decode::Decoder::decode_known`]).
    verdict: bool,
}

impl DynamicTable {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            ..Self::default()
        }
    }

    /// The table's size as §4.1 counts it.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn max_size(&self) -> usize {
        self.max
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The verdict stored with entry `i` (0 the newest).
    pub fn verdict(&self, i: usize) -> bool {
        self.entries.get(i).is_some_and(|e| e.verdict)
    }

    /// Entry `i`, 0 the newest (HPACK index 62).
    pub fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let e = self.entries.get(i)?;
        let name = &self.bytes[e.at..e.at + e.name];
        let value = &self.bytes[e.at + e.name..e.at + e.name + e.value];
        Some((name, value))
    }

    /// A new maximum size (a size update, §6.3): entries are evicted
    /// until the table fits.
    pub fn set_max_size(&mut self, max: usize) {
        self.max = max;
        self.evict_to(max);
        if self.entries.is_empty() {
            self.bytes.clear();
        }
    }

    /// Adds an entry (§4.4): older ones are evicted to make room; an entry
    /// larger than the maximum size empties the table and is not added.
    pub fn insert(&mut self, name: &[u8], value: &[u8]) {
        self.insert_with(name, value, false);
    }

    /// [`DynamicTable::insert`], keeping `verdict` with the entry.
    pub fn insert_with(&mut self, name: &[u8], value: &[u8], verdict: bool) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max {
            self.evict_to(0);
            self.bytes.clear();
            return;
        }
        self.evict_to(self.max - size);
        self.compact_for(name.len() + value.len());
        let at = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.entries.push_front(Entry {
            at,
            name: name.len(),
            value: value.len(),
            verdict,
        });
        self.size += size;
    }

    fn evict_to(&mut self, room: usize) {
        while self.size > room {
            let Some(e) = self.entries.pop_back() else {
                break;
            };
            self.size -= e.name + e.value + ENTRY_OVERHEAD;
        }
    }

    /// Before `n` more octets: when the buffer holds more evicted octets
    /// than live ones plus the new, the live ones move to its front.
    fn compact_for(&mut self, n: usize) {
        let Some(oldest) = self.entries.back().map(|e| e.at) else {
            self.bytes.clear();
            return;
        };
        let live = self.bytes.len() - oldest;
        if oldest > live + n {
            self.bytes.drain(..oldest);
            for e in &mut self.entries {
                e.at -= oldest;
            }
        }
    }

    /// The octets the table holds on to, evicted ones included (for its
    /// memory bound).
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_table_is_appendix_a() {
        assert_eq!(STATIC[0], (&b":authority"[..], &b""[..]));
        assert_eq!(STATIC[7], (&b":status"[..], &b"200"[..]));
        assert_eq!(STATIC[15], (&b"accept-encoding"[..], &b"gzip, deflate"[..]));
        assert_eq!(STATIC[60], (&b"www-authenticate"[..], &b""[..]));
    }

    /// RFC 7541 C.3-style evictions: sizes count 32 per entry, the oldest
    /// goes first, a too-large entry empties the table.
    #[test]
    fn entries_are_evicted_oldest_first() {
        let mut t = DynamicTable::new(100);
        assert!(t.is_empty());
        t.insert(b"aaaa", b"1111"); // 40
        assert!(!t.is_empty());
        t.insert(b"bbbb", b"2222"); // 80
        assert_eq!((t.len(), t.size()), (2, 80));
        assert_eq!(t.get(0), Some((&b"bbbb"[..], &b"2222"[..])));
        t.insert(b"cccc", b"3333"); // evicts aaaa
        assert_eq!((t.len(), t.size()), (2, 80));
        assert_eq!(t.get(1), Some((&b"bbbb"[..], &b"2222"[..])));
        assert_eq!(t.get(2), None);
        t.set_max_size(40);
        assert_eq!((t.len(), t.size()), (1, 40));
        assert_eq!(t.get(0), Some((&b"cccc"[..], &b"3333"[..])));
        t.insert(&[b'x'; 9], b""); // 41 > 40: empties
        assert_eq!((t.len(), t.size()), (0, 0));
        t.insert(b"", b""); // 32
        assert_eq!((t.len(), t.size()), (1, 32));
    }

    /// Thousands of insertions, the buffer compacted again and again:
    /// every entry reads back as a model of the table says (newest first,
    /// evicted by size), and the buffer stays within four maximum sizes
    /// while holding at least the live octets.
    #[test]
    fn the_buffer_stays_bounded() {
        let mut t = DynamicTable::new(4096);
        let mut model: std::collections::VecDeque<(Vec<u8>, Vec<u8>)> = Default::default();
        for i in 0..10_000usize {
            let name = format!("name-{i}").into_bytes();
            let value = vec![b'v'; i % 300];
            t.insert(&name, &value);
            model.push_front((name, value));
            let size = |m: &std::collections::VecDeque<(Vec<u8>, Vec<u8>)>| {
                m.iter().map(|(n, v)| n.len() + v.len() + 32).sum::<usize>()
            };
            while size(&model) > 4096 {
                model.pop_back();
            }
            assert_eq!(t.len(), model.len(), "after {i}");
            for (k, (n, v)) in model.iter().enumerate() {
                assert_eq!(t.get(k), Some((&n[..], &v[..])), "entry {k} after {i}");
            }
            assert_eq!(t.size(), size(&model));
            assert!(t.capacity() >= t.size() - 32 * t.len());
        }
        assert!(t.capacity() <= 4 * 4096, "{}", t.capacity());
    }

    /// An entry of exactly the maximum size fits (§4.4: only a larger
    /// one empties the table).
    #[test]
    fn an_entry_of_the_maximum_size_fits() {
        let mut t = DynamicTable::new(40);
        t.insert(b"aaaa", b"1111");
        assert_eq!((t.len(), t.size()), (1, 40));
    }
}
