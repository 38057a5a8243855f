//! Payloads of the write-ahead log's series and sample records.
//!
//! `Series`: varint count, then per series a varint ref, a varint label
//! count and each label as length-prefixed name and value. `Samples`:
//! varint count, then per sample a varint ref, a zigzag-varint timestamp
//! delta from the previous sample in the record (the first from 0) and the
//! value's 8 bytes little-endian (every bit pattern kept: staleness
//! markers too).
//!
//! Invariant: decoding never panics and never allocates more than the
//! payload's length justifies; malformed input is an error.

use tocsin_rules::promql::value::{Label, Labels};

/// WAL record kinds written by the series store.
pub const KIND_SERIES: u8 = 1;
pub const KIND_SAMPLES: u8 = 2;

/// A malformed payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} record at byte {offset}")]
pub struct DecodeError {
    pub what: &'static str,
    pub offset: usize,
}

pub(super) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(super) fn err(&self) -> DecodeError {
        DecodeError {
            what: self.what,
            offset: self.pos,
        }
    }

    pub(super) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(|| self.err())?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err())
    }

    pub(super) fn varint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A count of items each at least `min_bytes` long, checked against
    /// what remains so a corrupt count cannot cause a huge allocation.
    pub(super) fn count(&mut self, min_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.uvarint()?;
        let remaining = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_bytes as u64) > remaining {
            return Err(self.err());
        }
        Ok(n as usize)
    }

    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.err())?;
        let b = self.buf.get(self.pos..end).ok_or_else(|| self.err())?;
        self.pos = end;
        Ok(b)
    }

    pub(super) fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.count(1)?;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err())
    }

    pub(super) fn f64(&mut self) -> Result<f64, DecodeError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_bits(u64::from_le_bytes(a)))
    }

    pub(super) fn labels(&mut self) -> Result<Labels, DecodeError> {
        let nl = self.count(2)?;
        let mut labels = Vec::with_capacity(nl);
        for _ in 0..nl {
            let name = self.string()?;
            let value = self.string()?;
            labels.push(Label { name, value });
        }
        Ok(Labels::from_vec(labels))
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    pub(super) fn done(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.err())
        }
    }
}

/// A label set as a count and length-prefixed names and values.
pub(super) fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(out, labels.len() as u64);
    for l in labels.iter() {
        put_str(out, &l.name);
        put_str(out, &l.value);
    }
}

/// Encodes new series with their refs.
pub fn encode_series(series: &[(u64, Labels)], out: &mut Vec<u8>) {
    put_uvarint(out, series.len() as u64);
    for (r, labels) in series {
        put_uvarint(out, *r);
        put_uvarint(out, labels.len() as u64);
        for l in labels.iter() {
            put_str(out, &l.name);
            put_str(out, &l.value);
        }
    }
}

pub fn decode_series(buf: &[u8]) -> Result<Vec<(u64, Labels)>, DecodeError> {
    let mut r = Reader {
        buf,
        pos: 0,
        what: "series",
    };
    let n = r.count(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let sref = r.uvarint()?;
        let nl = r.count(2)?;
        let mut labels = Vec::with_capacity(nl);
        for _ in 0..nl {
            let name = r.string()?;
            let value = r.string()?;
            labels.push(Label { name, value });
        }
        out.push((sref, Labels::from_vec(labels)));
    }
    r.done()?;
    Ok(out)
}

/// One sample of a series known by its ref.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    pub sref: u64,
    pub t: i64,
    pub v: f64,
}

pub fn encode_samples(samples: &[RefSample], out: &mut Vec<u8>) {
    put_uvarint(out, samples.len() as u64);
    let mut prev_t = 0i64;
    for s in samples {
        put_uvarint(out, s.sref);
        put_varint(out, s.t.wrapping_sub(prev_t));
        out.extend_from_slice(&s.v.to_bits().to_le_bytes());
        prev_t = s.t;
    }
}

pub fn decode_samples(buf: &[u8]) -> Result<Vec<RefSample>, DecodeError> {
    let mut r = Reader {
        buf,
        pos: 0,
        what: "samples",
    };
    let n = r.count(10)?;
    let mut out = Vec::with_capacity(n);
    let mut prev_t = 0i64;
    for _ in 0..n {
        let sref = r.uvarint()?;
        let t = prev_t.wrapping_add(r.varint()?);
        let v = r.f64()?;
        out.push(RefSample { sref, t, v });
        prev_t = t;
    }
    r.done()?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tocsin_rules::promql::value::stale_nan;

    #[test]
    fn series_roundtrip() {
        let series = vec![
            (1, Labels::from_pairs([("__name__", "up"), ("job", "api")])),
            (7, Labels::from_pairs([("host.name", "ü-1")])),
        ];
        let mut buf = Vec::new();
        encode_series(&series, &mut buf);
        assert_eq!(decode_series(&buf).unwrap(), series);
    }

    #[test]
    fn samples_keep_every_bit_pattern() {
        let samples = vec![
            RefSample {
                sref: 3,
                t: 1_700_000_000_000,
                v: 1.5,
            },
            RefSample {
                sref: 4,
                t: 1_699_999_999_000,
                v: stale_nan(),
            },
            RefSample {
                sref: 3,
                t: -5,
                v: -0.0,
            },
        ];
        let mut buf = Vec::new();
        encode_samples(&samples, &mut buf);
        let got = decode_samples(&buf).unwrap();
        let bits = |v: &[RefSample]| {
            v.iter()
                .map(|s| (s.sref, s.t, s.v.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&got), bits(&samples));
    }

    #[test]
    fn huge_counts_are_refused_without_allocating() {
        let mut buf = Vec::new();
        put_uvarint(&mut buf, u64::MAX / 2);
        assert!(decode_samples(&buf).is_err());
        assert!(decode_series(&buf).is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_samples(&bytes);
            let _ = decode_series(&bytes);
        }
    }
}
