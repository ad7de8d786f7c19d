//! The spool, `PREFIX.spool`: where a deferred trace's records wait until
//! stop. A header, then room for `--trace-memory` worth of records, mapped
//! shared into the writer's memory (sized and touched at start, so that
//! holding a record costs a copy and no page fault), then whatever did not
//! fit, appended with `write`. The mapping is the file's page cache: when
//! the server dies (a panic, the OOM killer, SIGKILL) the kernel still
//! holds every batch the writer had taken, and `h2lab trace-convert`
//! (`convert.rs`) formats them, marked incomplete. Perfetto keeps its
//! buffers in shared memory for the same reason.
//!
//! The header (32 octets, little-endian): `H2LSPOOL`, the room in records,
//! the records held in that room (stored after the records themselves), 0.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{compiler_fence, Ordering};

use super::format::Formatter;
use crate::trace::schema::Packed;

/// Octets of one record in the spool.
pub const SPOOL_RECORD: usize = Packed::SIZE;
const MAGIC: &[u8; 8] = b"H2LSPOOL";
const HEADER: usize = 32;
const PAGE: usize = 4096;

/// The spool of a running trace.
pub(super) struct Spool {
    file: File,
    map: memmap2::MmapMut,
    /// Records the mapping has room for.
    room: usize,
    /// Records held in it.
    held: usize,
    /// Records appended past it.
    appended: u64,
}

impl Spool {
    /// Creates `path` with room for `room` records, maps it and touches
    /// every page.
    pub(super) fn create(path: &Path, room: usize) -> io::Result<Spool> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let len = HEADER + room * SPOOL_RECORD;
        file.set_len(len as u64)?;
        // SAFETY: a mapping's contents may change under it if another
        // process writes the file. This file was just created (truncated)
        // by this process for this trace alone; nothing else writes it
        // while the server runs, and its readers (`trace-convert`) run
        // after the server is gone. The mapping lives in the `Spool`, and
        // every access goes through it, within `len`.
        #[expect(unsafe_code, reason = "a file mapping has no safe constructor")]
        let mut map = unsafe { memmap2::MmapMut::map_mut(&file)? };
        for page in (0..len).step_by(PAGE) {
            map[page] = 0;
        }
        map[0..8].copy_from_slice(MAGIC);
        map[8..16].copy_from_slice(&(room as u64).to_le_bytes());
        map[16..32].fill(0);
        Ok(Spool {
            file,
            map,
            room,
            held: 0,
            appended: 0,
        })
    }

    /// Keeps a batch: in the mapping while it has room, else appended to
    /// the file (on disk at once: a crash loses only what threads hold).
    /// Once one batch is appended, so are all after it: the spool keeps
    /// the batches' order.
    pub(super) fn keep(&mut self, batch: &[Packed]) -> io::Result<()> {
        if self.appended == 0 && self.held + batch.len() <= self.room {
            let at = HEADER + self.held * SPOOL_RECORD;
            self.map[at..at + batch.len() * SPOOL_RECORD]
                .copy_from_slice(&Packed::as_spool_bytes(batch));
            self.held += batch.len();
            // The count after the records it counts.
            compiler_fence(Ordering::Release);
            self.map[16..24].copy_from_slice(&(self.held as u64).to_le_bytes());
            return Ok(());
        }
        let end = (HEADER + self.room * SPOOL_RECORD) as u64 + self.appended * SPOOL_RECORD as u64;
        self.file
            .write_all_at(&Packed::as_spool_bytes(batch), end)?;
        self.appended += batch.len() as u64;
        Ok(())
    }

    /// Formats every record kept, in order, into both outputs: read back
    /// from the file (the mapping is its page cache), as `trace-convert`
    /// reads a dead server's.
    pub(super) fn format(
        &self,
        fmt: &mut Formatter,
        csv: &mut impl Write,
        json: &mut impl Write,
    ) -> io::Result<u64> {
        format_kept(
            &self.file,
            self.room as u64,
            self.held as u64,
            fmt,
            csv,
            json,
        )
    }
}

/// Formats a spool file's records, in order, into both outputs: the `held`
/// records of its room for `room`, then those appended past it.
pub(super) fn format_kept(
    file: &File,
    room: u64,
    held: u64,
    fmt: &mut Formatter,
    csv: &mut impl Write,
    json: &mut impl Write,
) -> io::Result<u64> {
    let mut file = file;
    file.seek(SeekFrom::Start(HEADER as u64))?;
    let mut n = format_records(file.take(held * SPOOL_RECORD as u64), fmt, csv, json)?;
    file.seek(SeekFrom::Start(HEADER as u64 + room * SPOOL_RECORD as u64))?;
    n += format_records(file, fmt, csv, json)?;
    Ok(n)
}

/// Formats every whole record `records` yields into both outputs.
fn format_records(
    mut records: impl Read,
    fmt: &mut Formatter,
    csv: &mut impl Write,
    json: &mut impl Write,
) -> io::Result<u64> {
    let mut chunk = vec![0u8; SPOOL_RECORD * 4096];
    let mut n = 0u64;
    loop {
        let got = read_full(&mut records, &mut chunk)?;
        // A record cut short by a crash is left out.
        for raw in chunk[..got - got % SPOOL_RECORD].chunks_exact(SPOOL_RECORD) {
            let raw = raw.try_into().expect("a whole record");
            fmt.record(&Packed::from_bytes(raw).unpack());
            n += 1;
        }
        fmt.drain(csv, json)?;
        if got < chunk.len() {
            return Ok(n);
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the octets read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// What a spool's header says: (room, held), in records.
pub(super) fn header(path: &Path, file: &mut File) -> io::Result<(u64, u64)> {
    let mut head = [0u8; HEADER];
    file.read_exact(&mut head).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{}: no spool header ({e})", path.display()),
        )
    })?;
    if &head[0..8] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not an h2lab spool", path.display()),
        ));
    }
    let at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().expect("8 octets"));
    Ok((at(8), at(16).min(at(8))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::schema::{Name, NO_STATE};

    fn batch(from: u64, n: u64) -> Vec<Packed> {
        (from..from + n)
            .map(|i| Packed::action(i, 1, Name::Engine, i, NO_STATE))
            .collect()
    }

    /// What the mapping held and what went past it both come back, in
    /// order, from the file alone, as after a crash.
    #[test]
    fn a_spool_read_back_from_its_file_holds_every_batch_kept() {
        let dir = std::env::temp_dir().join(format!("h2lab-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.spool");
        let mut spool = Spool::create(&path, 10).unwrap();
        spool.keep(&batch(0, 4)).unwrap();
        spool.keep(&batch(4, 4)).unwrap();
        // 8 held; 4 more do not fit: appended past the room, and so is
        // the next, though it would fit.
        spool.keep(&batch(8, 4)).unwrap();
        spool.keep(&batch(12, 1)).unwrap();
        assert_eq!((spool.held, spool.appended), (8, 5));
        // Read from the file, not the mapping (the process is alive, so
        // this is the page cache a crash would leave).
        let mut file = File::open(&path).unwrap();
        assert_eq!(header(&path, &mut file).unwrap(), (10, 8));
        let mut all = vec![0u8; 8 * SPOOL_RECORD];
        file.read_exact(&mut all).unwrap();
        file.seek(SeekFrom::Start((HEADER + 10 * SPOOL_RECORD) as u64))
            .unwrap();
        file.read_to_end(&mut all).unwrap();
        let ts: Vec<u64> = all
            .chunks_exact(SPOOL_RECORD)
            .map(|c| Packed::from_bytes(c.try_into().unwrap()).ts_ns())
            .collect();
        assert_eq!(ts, (0..13).collect::<Vec<u64>>());
        drop(spool);
        std::fs::write(&path, b"something else entirely, 32 octets+").unwrap();
        let err = header(&path, &mut File::open(&path).unwrap()).unwrap_err();
        assert!(err.to_string().contains("not an h2lab spool"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
