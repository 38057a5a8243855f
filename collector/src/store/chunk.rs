//! Compressed sample chunks: delta-of-delta timestamps and XOR-encoded
//! values (the Gorilla encoding, as Prometheus' `XORChunk`).
//!
//! Invariants: samples are appended in strictly increasing time order; a
//! chunk holds at most [`MAX_SAMPLES`] samples; every float bit pattern
//! (NaN payloads, the staleness marker, -0.0) round-trips exactly.

use tocsin_rules::promql::Sample;

/// Samples per chunk. Prometheus cuts at 120: about two hours at 1m, the
/// point where the encoding's gains flatten.
pub const MAX_SAMPLES: usize = 120;

/// Why a sample was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("chunk is full ({MAX_SAMPLES} samples)")]
    Full,
    #[error("sample at {t} is not after the chunk's newest sample at {newest}")]
    OutOfOrder { t: i64, newest: i64 },
}

/// An append-only bit stream.
#[derive(Debug, Clone, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 means a new byte is needed).
    used: u8,
}

impl BitWriter {
    fn push_bit(&mut self, bit: bool) {
        if self.used == 0 {
            self.bytes.push(0);
        }
        if bit && let Some(last) = self.bytes.last_mut() {
            *last |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) % 8;
    }

    /// Writes the low `n` bits of `v`, most significant first, a byte's
    /// worth at a time.
    fn push_bits(&mut self, v: u64, n: u8) {
        let mut remaining = n.min(64);
        while remaining > 0 {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let free = 8 - self.used;
            let take = free.min(remaining);
            let bits = ((v >> (remaining - take)) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= bits << (free - take);
            }
            self.used = (self.used + take) % 8;
            remaining -= take;
        }
    }
}

/// Reads a [`BitWriter`]'s stream.
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    /// Reads `n` (at most 64) bits, a byte's worth at a time.
    fn bits(&mut self, n: u8) -> Option<u64> {
        let n = usize::from(n.min(64));
        if self.pos + n > self.bytes.len() * 8 {
            return None;
        }
        let mut v = 0u64;
        let mut remaining = n;
        while remaining > 0 {
            let byte = *self.bytes.get(self.pos / 8)?;
            let avail = 8 - self.pos % 8;
            let take = avail.min(remaining);
            let bits = (u64::from(byte) >> (avail - take)) & ((1u64 << take) - 1);
            v = (v << take) | bits;
            self.pos += take;
            remaining -= take;
        }
        Some(v)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Sign-extends the low `n` bits of `v`.
fn sign_extend(v: u64, n: u8) -> i64 {
    let shift = 64 - u32::from(n);
    ((v << shift) as i64) >> shift
}

/// A compressed chunk of one series' samples.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    bits: BitWriter,
    count: usize,
    min_t: i64,
    last_t: i64,
    last_delta: i64,
    last_v: u64,
    leading: u8,
    trailing: u8,
}

impl Chunk {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= MAX_SAMPLES
    }

    /// Oldest timestamp (meaningless when empty).
    pub fn min_time(&self) -> i64 {
        self.min_t
    }

    /// Newest timestamp (meaningless when empty).
    pub fn max_time(&self) -> i64 {
        self.last_t
    }

    /// Encoded size in bytes.
    pub fn byte_len(&self) -> usize {
        self.bits.bytes.len()
    }

    /// Gives back the spare capacity the encoder grew into: a chunk that
    /// is closed never grows again.
    pub fn shrink_to_fit(&mut self) {
        self.bits.bytes.shrink_to_fit();
    }

    /// The encoded bytes (for snapshots); [`Chunk::from_bytes`] and
    /// [`Chunk::sealed`] read them.
    pub fn bytes(&self) -> &[u8] {
        &self.bits.bytes
    }

    pub fn append(&mut self, t: i64, v: f64) -> Result<(), AppendError> {
        if self.count >= MAX_SAMPLES {
            return Err(AppendError::Full);
        }
        if self.count > 0 && t <= self.last_t {
            return Err(AppendError::OutOfOrder {
                t,
                newest: self.last_t,
            });
        }
        let vb = v.to_bits();
        match self.count {
            0 => {
                self.bits.push_bits(zigzag(t), 64);
                self.bits.push_bits(vb, 64);
                self.min_t = t;
            }
            1 => {
                let delta = t - self.last_t;
                self.bits.push_bits(zigzag(delta), 64);
                self.write_value(vb);
                self.last_delta = delta;
            }
            _ => {
                let delta = t - self.last_t;
                let dod = delta - self.last_delta;
                self.write_dod(dod);
                self.write_value(vb);
                self.last_delta = delta;
            }
        }
        self.last_t = t;
        self.last_v = vb;
        self.count += 1;
        Ok(())
    }

    fn write_dod(&mut self, dod: i64) {
        // Buckets as Prometheus' XOR chunk: 14, 17 and 20 bits, else 64.
        let fits = |n: u8| -> bool {
            // Symmetric, so that sign extension on read is exact.
            dod.unsigned_abs() < 1u64 << (n - 1)
        };
        if dod == 0 {
            self.bits.push_bit(false);
        } else if fits(14) {
            self.bits.push_bits(0b10, 2);
            self.bits.push_bits(dod as u64, 14);
        } else if fits(17) {
            self.bits.push_bits(0b110, 3);
            self.bits.push_bits(dod as u64, 17);
        } else if fits(20) {
            self.bits.push_bits(0b1110, 4);
            self.bits.push_bits(dod as u64, 20);
        } else {
            self.bits.push_bits(0b1111, 4);
            self.bits.push_bits(dod as u64, 64);
        }
    }

    fn write_value(&mut self, vb: u64) {
        let xor = vb ^ self.last_v;
        if xor == 0 {
            self.bits.push_bit(false);
            return;
        }
        self.bits.push_bit(true);
        // Leading zeros are stored in 5 bits, so cap them at 31.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        // The second sample has no previous window to reuse.
        let reuse = self.count >= 2 && leading >= self.leading && trailing >= self.trailing;
        if reuse {
            self.bits.push_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.bits.push_bits(xor >> self.trailing, sig);
        } else {
            self.bits.push_bit(true);
            let sig = 64 - leading - trailing;
            self.bits.push_bits(u64::from(leading), 5);
            // 64 significant bits are written as 0 (6 bits cannot hold 64).
            self.bits.push_bits(u64::from(sig % 64), 6);
            self.bits.push_bits(xor >> trailing, sig);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    /// Rebuilds a chunk from [`Chunk::bytes`] and its sample count, e.g. from
    /// a snapshot, decoding it once to recover the appender's state (the
    /// bytes are kept as they are, not re-encoded). Returns `None` when the
    /// bytes do not decode to exactly `count` increasing samples.
    pub fn from_bytes(bytes: &[u8], count: usize) -> Option<Chunk> {
        if count == 0 {
            return bytes.is_empty().then(Chunk::new);
        }
        if count > MAX_SAMPLES {
            return None;
        }
        let mut it = ChunkIter::new(bytes, count);
        let mut min_t = 0;
        let mut prev: Option<i64> = None;
        for i in 0..count {
            let s = it.next_sample()?;
            if prev.is_some_and(|p| s.t <= p) {
                return None;
            }
            if i == 0 {
                min_t = s.t;
            }
            prev = Some(s.t);
        }
        // The writer pads only the last byte: every byte must have been read.
        if it.r.pos.div_ceil(8) != bytes.len() {
            return None;
        }
        Some(Chunk {
            bits: BitWriter {
                bytes: bytes.to_vec(),
                used: (it.r.pos % 8) as u8,
            },
            count,
            min_t,
            last_t: it.t,
            last_delta: it.delta,
            last_v: it.v,
            leading: it.leading,
            trailing: it.trailing,
        })
    }

    /// Rebuilds a full chunk from its bytes and time range without decoding
    /// it: a full chunk is never appended to, so its appender state is not
    /// needed. Snapshots checksum the bytes; this is what makes loading
    /// them cost a copy rather than a decode. Returns `None` unless `count`
    /// is [`MAX_SAMPLES`] and the range is ordered.
    pub fn sealed(bytes: Vec<u8>, count: usize, min_t: i64, max_t: i64) -> Option<Chunk> {
        (count == MAX_SAMPLES && min_t < max_t && !bytes.is_empty()).then(|| Chunk {
            bits: BitWriter { bytes, used: 0 },
            count,
            min_t,
            last_t: max_t,
            ..Chunk::default()
        })
    }

    /// The samples, oldest first.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.bits.bytes, self.count)
    }
}

/// Decodes a chunk's samples, oldest first.
pub struct ChunkIter<'a> {
    r: BitReader<'a>,
    remaining: usize,
    read: usize,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl<'a> ChunkIter<'a> {
    fn new(bytes: &'a [u8], count: usize) -> Self {
        ChunkIter {
            r: BitReader { bytes, pos: 0 },
            remaining: count,
            read: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
        }
    }

    fn read_value(&mut self) -> Option<()> {
        if !self.r.bit()? {
            return Some(());
        }
        if self.r.bit()? {
            self.leading = self.r.bits(5)? as u8;
            let mut sig = self.r.bits(6)? as u8;
            if sig == 0 {
                sig = 64;
            }
            self.trailing = 64u8.checked_sub(self.leading)?.checked_sub(sig)?;
        }
        let sig = 64u8.checked_sub(self.leading)?.checked_sub(self.trailing)?;
        let bits = self.r.bits(sig)?;
        self.v ^= bits.checked_shl(u32::from(self.trailing))?;
        Some(())
    }

    fn next_sample(&mut self) -> Option<Sample> {
        match self.read {
            0 => {
                self.t = unzigzag(self.r.bits(64)?);
                self.v = self.r.bits(64)?;
            }
            1 => {
                self.delta = unzigzag(self.r.bits(64)?);
                self.t = self.t.checked_add(self.delta)?;
                self.read_value()?;
            }
            _ => {
                let dod = if !self.r.bit()? {
                    0
                } else if !self.r.bit()? {
                    sign_extend(self.r.bits(14)?, 14)
                } else if !self.r.bit()? {
                    sign_extend(self.r.bits(17)?, 17)
                } else if !self.r.bit()? {
                    sign_extend(self.r.bits(20)?, 20)
                } else {
                    self.r.bits(64)? as i64
                };
                self.delta = self.delta.checked_add(dod)?;
                self.t = self.t.checked_add(self.delta)?;
                self.read_value()?;
            }
        }
        self.read += 1;
        Some(Sample {
            t: self.t,
            v: f64::from_bits(self.v),
        })
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match self.next_sample() {
            Some(s) => Some(s),
            None => {
                self.remaining = 0;
                None
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tocsin_rules::promql::value::stale_nan;

    fn roundtrip(samples: &[(i64, f64)]) {
        let mut c = Chunk::new();
        for &(t, v) in samples {
            c.append(t, v).unwrap();
        }
        let got: Vec<(i64, u64)> = c.iter().map(|s| (s.t, s.v.to_bits())).collect();
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got, want);
        let mut rebuilt = Chunk::from_bytes(c.bytes(), c.len()).unwrap();
        assert_eq!(rebuilt.iter().count(), samples.len());
        assert_eq!(
            (rebuilt.min_time(), rebuilt.max_time()),
            (c.min_time(), c.max_time())
        );
        // The appender state is recovered: appending to the rebuilt chunk
        // writes the same bits as appending to the original.
        if !c.is_full() {
            let next = c.max_time() + 7_000;
            c.append(next, 3.25).unwrap();
            rebuilt.append(next, 3.25).unwrap();
            assert_eq!(rebuilt.bytes(), c.bytes());
        }
    }

    #[test]
    fn regular_scrape_compresses_well() {
        let samples: Vec<(i64, f64)> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 15_000, 42.0))
            .collect();
        let mut c = Chunk::new();
        for &(t, v) in &samples {
            c.append(t, v).unwrap();
        }
        // 16 bytes for the first sample, ~9 for the second, then 2 bits each.
        assert!(c.byte_len() < 60, "{} bytes", c.byte_len());
        roundtrip(&samples);
    }

    #[test]
    fn special_values_roundtrip() {
        roundtrip(&[
            (0, 1.0),
            (1, f64::NAN),
            (2, stale_nan()),
            (3, -0.0),
            (4, f64::INFINITY),
            (5, f64::NEG_INFINITY),
            (6, f64::MIN_POSITIVE),
            (7, f64::MAX),
            (9, 0.0),
        ]);
    }

    #[test]
    fn delta_of_delta_bucket_edges_roundtrip() {
        // Deltas whose change lands exactly on each bucket's edge.
        let mut samples = vec![(0, 0.0), (1000, 1.0)];
        let mut t = 1000;
        let mut delta = 1000;
        for n in [14u32, 17, 20] {
            for dod in [1i64 << (n - 1), -(1i64 << (n - 1)), (1i64 << (n - 1)) - 1] {
                delta += dod;
                delta = delta.max(1);
                t += delta;
                samples.push((t, t as f64));
            }
        }
        roundtrip(&samples);
    }

    #[test]
    fn bytes_that_do_not_decode_to_the_count_are_refused() {
        let mut c = Chunk::new();
        for i in 0..10 {
            c.append(i * 1000, i as f64).unwrap();
        }
        // One more sample can hide in the last byte's padding (the count,
        // checksummed, is what rules it out), a byte's worth cannot.
        assert!(Chunk::from_bytes(c.bytes(), 18).is_none());
        assert!(Chunk::from_bytes(c.bytes(), 5).is_none());
        assert!(Chunk::from_bytes(&c.bytes()[..c.byte_len() - 1], 10).is_none());
        assert!(Chunk::sealed(c.bytes().to_vec(), 10, 0, 9000).is_none());
    }

    #[test]
    fn rejects_out_of_order_and_overflow() {
        let mut c = Chunk::new();
        c.append(10, 1.0).unwrap();
        assert_eq!(
            c.append(10, 1.0),
            Err(AppendError::OutOfOrder { t: 10, newest: 10 })
        );
        for i in 1..MAX_SAMPLES as i64 {
            c.append(10 + i, 1.0).unwrap();
        }
        assert_eq!(c.append(10_000, 1.0), Err(AppendError::Full));
    }

    proptest! {
        /// The byte-at-a-time writer and reader produce and read exactly
        /// the bit-at-a-time stream (chunk bytes are stored in snapshots).
        #[test]
        fn bulk_bit_io_matches_bit_by_bit(
            fields in prop::collection::vec((any::<u64>(), 0u8..=64), 0..40),
        ) {
            let mut bulk = BitWriter::default();
            let mut single = BitWriter::default();
            for &(v, n) in &fields {
                bulk.push_bits(v, n);
                for i in (0..n).rev() {
                    single.push_bit((v >> i) & 1 == 1);
                }
            }
            prop_assert_eq!(&bulk.bytes, &single.bytes);
            prop_assert_eq!(bulk.used, single.used);
            let mut r = BitReader { bytes: &bulk.bytes, pos: 0 };
            for &(v, n) in &fields {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.bits(n), Some(v & mask));
            }
        }

        #[test]
        fn any_increasing_series_roundtrips(
            start in any::<i32>(),
            deltas in prop::collection::vec(1i64..10_000_000_000, 0..119),
            values in prop::collection::vec(any::<u64>(), 120),
        ) {
            let mut t = i64::from(start);
            let mut samples = vec![(t, f64::from_bits(values[0]))];
            for (i, d) in deltas.iter().enumerate() {
                t += d;
                samples.push((t, f64::from_bits(values[i + 1])));
            }
            roundtrip(&samples);
        }
    }
}
