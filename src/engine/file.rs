//! `serve --body-file PATH`: `/` answered with a file's octets, read from
//! the file for every request, as h2o's and nghttpd's file handlers do
//! (one `pread` per request: the bench counts them), so that h2lab and its
//! peers can be compared on the same body source.
//!
//! The engines stay sans-IO: the mini engine asks its driver for the
//! octets of each answer that needs them ([`crate::engine::MiniConnection::fill_bodies`]),
//! and the driver reads them here. This is the one place of `engine` that
//! reads a file, as `work.rs` is the one that sleeps.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// A file every answer to `/` is read from, and its length when the server
/// started. Clones share the open file.
#[derive(Clone, Debug)]
pub struct BodyFile {
    file: Arc<std::fs::File>,
    len: u64,
}

impl PartialEq for BodyFile {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.file, &other.file)
    }
}

impl Eq for BodyFile {}

/// The largest file `--body-file` takes (an answer is read whole).
pub const MAX_FILE: u64 = 64 << 20;

impl BodyFile {
    /// Opens `path`.
    pub fn open(path: &std::path::Path) -> Result<BodyFile, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        if meta.len() > MAX_FILE {
            return Err(format!("{}: larger than 64MiB", path.display()));
        }
        Ok(BodyFile {
            file: Arc::new(file),
            len: meta.len(),
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the whole file into `out` (replacing what it held) with
    /// `pread` from offset 0: one call for any file up to the size a read
    /// returns at once; a file that has shrunk since the start is padded
    /// with zeros, so that the answer keeps the length it announced.
    pub fn read(&self, out: &mut Vec<u8>) {
        out.clear();
        out.resize(self.len as usize, 0);
        let mut at = 0;
        while at < out.len() {
            match self.file.read_at(&mut out[at..], at as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => at += n,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_whole_each_time() {
        let path = std::env::temp_dir().join(format!("h2lab-file-{}", std::process::id()));
        std::fs::write(&path, b"<html>hello</html>\n").unwrap();
        let body = BodyFile::open(&path).unwrap();
        assert_eq!(body.len(), 19);
        let mut out = vec![1, 2, 3];
        body.read(&mut out);
        assert_eq!(out, b"<html>hello</html>\n");
        // Shrunk meanwhile: the announced length, zeros after the end.
        std::fs::write(&path, b"<h").unwrap();
        body.read(&mut out);
        assert_eq!(&out[..2], b"<h");
        assert_eq!(out.len(), 19);
        assert!(out[2..].iter().all(|&b| b == 0));
        let _ = std::fs::remove_file(&path);
        assert!(BodyFile::open(std::path::Path::new("/")).is_err());
        assert!(BodyFile::open(std::path::Path::new("/nonexistent/x")).is_err());
    }
}
