//! File identity. A file incarnation is a device+inode plus a fingerprint:
//! the xxh64 of its first `len` bytes, `len` = min(size, 1 KiB) when last
//! looked at. A growing file's fingerprint is extended (never replaced)
//! while it is shorter than 1 KiB: the old prefix must still hash the same,
//! so growth keeps the identity and anything else (truncation, inode reuse)
//! shows as a mismatch. Files do not shrink except by truncation, so a file
//! now shorter than its fingerprint or its read offset is a new incarnation.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use xxhash_rust::xxh64::xxh64;

/// Bytes fingerprinted at most.
pub const FINGERPRINT_BYTES: u64 = 1024;

/// Hash of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

impl Fingerprint {
    /// Fingerprint of `bytes` (already cut to the wanted length).
    pub fn of(bytes: &[u8]) -> Self {
        Fingerprint {
            len: bytes.len() as u64,
            hash: xxh64(bytes, 0),
        }
    }

    /// Reads and fingerprints the first min(size, 1 KiB) bytes of `file`.
    pub fn read(file: &File, size: u64) -> io::Result<(Fingerprint, Vec<u8>)> {
        let prefix = read_prefix(file, size.min(FINGERPRINT_BYTES))?;
        Ok((Fingerprint::of(&prefix), prefix))
    }

    /// Does `file` (of `size` bytes) start with this fingerprint's prefix?
    pub fn matches(&self, file: &File, size: u64) -> io::Result<bool> {
        if size < self.len {
            return Ok(false);
        }
        let prefix = read_prefix(file, self.len)?;
        Ok(prefix.len() as u64 == self.len && xxh64(&prefix, 0) == self.hash)
    }

    /// Could this fingerprint still grow (file was shorter than the
    /// fingerprint length when taken)?
    pub fn is_short(&self) -> bool {
        self.len < FINGERPRINT_BYTES
    }

    pub fn hash_hex(&self) -> String {
        format!("{:016x}", self.hash)
    }

    pub fn parse(len: u64, hex: &str) -> Option<Self> {
        Some(Fingerprint {
            len,
            hash: u64::from_str_radix(hex, 16).ok()?,
        })
    }
}

/// Reads up to `len` bytes from the start of `file` (fewer at EOF).
pub fn read_prefix(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Reads `len` bytes at `offset` (fewer at EOF).
pub fn read_range(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// `tocsin.file.id` of an incarnation: device, inode and a generation
/// number unique to the agent's data directory, so a file truncated in
/// place or an inode reused gets a new id, and the id survives restarts
/// (it is stored in the checkpoints).
pub fn file_id(dev: u64, ino: u64, generation: u64) -> String {
    format!("{dev:x}-{ino:x}-{generation:x}")
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn growing_file_keeps_matching_its_short_fingerprint() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"hello\n").unwrap();
        let (fp, prefix) = Fingerprint::read(&f, 6).unwrap();
        assert_eq!((fp.len, prefix.as_slice()), (6, &b"hello\n"[..]));
        assert!(fp.is_short());
        f.write_all(&[b'x'; 2000]).unwrap();
        assert!(fp.matches(&f, 2006).unwrap());
        let (full, _) = Fingerprint::read(&f, 2006).unwrap();
        assert_eq!(full.len, FINGERPRINT_BYTES);
        assert!(!full.is_short());
    }

    #[test]
    fn truncated_or_rewritten_files_do_not_match() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"first content\n").unwrap();
        let (fp, _) = Fingerprint::read(&f, 14).unwrap();
        f.set_len(0).unwrap();
        assert!(!fp.matches(&f, 0).unwrap(), "shorter");
        f.write_all_at(b"other content!\n", 0).unwrap();
        assert!(!fp.matches(&f, 15).unwrap(), "different bytes");
    }

    #[test]
    fn hex_round_trip_and_ids() {
        let fp = Fingerprint::of(b"abc");
        assert_eq!(Fingerprint::parse(3, &fp.hash_hex()), Some(fp));
        assert_eq!(Fingerprint::parse(3, "zz"), None);
        assert_eq!(file_id(0x801, 0x1234, 7), "801-1234-7");
    }
}
