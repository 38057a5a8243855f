//! Binary encodings of the log store: one record in its stored form
//! (without its labels, repeated strings through a [`Dict`]), as memory
//! blocks keep it; a write-ahead-log batch (a dictionary and a label-set
//! table shared by its records, the records in stored form, and the
//! counter increments they caused); and a counter snapshot.
//!
//! Every WAL payload starts with a payload version byte, so the record
//! kinds can evolve without a new segment format. Integers are LEB128
//! varints (signed ones zigzag), strings are length-prefixed UTF-8.
//!
//! Invariant: decoding never panics and never allocates more than the
//! input's length justifies; malformed input is an error, not a guess.

use std::sync::Arc;

use tocsin_rules::promql::value::{Label, Labels};

use super::record::{AttrValue, LogRecord, RecordOrigin, Severity};
use crate::translate::logs::FILE_OFFSET_ATTRIBUTE;

/// WAL record kind of a batch of accepted log records and their counter
/// increments. Kinds 1 and 2 are the series store's; the numbers stay
/// distinct even though the log WAL has its own directory, so a
/// misconfigured shared directory can never be misread.
pub const KIND_LOG_BATCH: u8 = 3;
/// WAL record kind of a full snapshot of the log counters; every segment
/// the log store starts opens with one.
pub const KIND_COUNTER_SNAPSHOT: u8 = 4;
/// The payload version written by this code.
pub const PAYLOAD_VERSION: u8 = 1;

/// A malformed payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed {what} at byte {offset}")]
    Malformed { what: &'static str, offset: usize },
    #[error("{what} payload version {found} is not supported (this build reads {PAYLOAD_VERSION})")]
    Version { what: &'static str, found: u8 },
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

pub(crate) fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(out, labels.len() as u64);
    for l in labels.iter() {
        put_str(out, &l.name);
        put_str(out, &l.value);
    }
}

/// A bounds-checked cursor over a payload.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    fn err(&self) -> DecodeError {
        DecodeError::Malformed {
            what: self.what,
            offset: self.pos,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err())?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err())
    }

    pub(crate) fn varint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A count of items each at least `min_bytes` long, checked against
    /// what remains so a corrupt count cannot cause a huge allocation.
    pub(crate) fn count(&mut self, min_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.uvarint()?;
        let remaining = self.buf.len().saturating_sub(self.pos) as u64;
        if n.saturating_mul(min_bytes.max(1) as u64) > remaining {
            return Err(self.err());
        }
        usize::try_from(n).map_err(|_| self.err())
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.count(1)?;
        let bytes = &self.buf[self.pos..self.pos + len];
        let s = std::str::from_utf8(bytes).map_err(|_| self.err())?;
        self.pos += len;
        Ok(s)
    }

    fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?.to_string())),
            _ => Err(self.err()),
        }
    }

    pub(crate) fn labels(&mut self) -> Result<Labels, DecodeError> {
        let n = self.count(2)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.str()?.to_string();
            let value = self.str()?.to_string();
            v.push(Label { name, value });
        }
        Ok(Labels::from_vec(v))
    }

    fn version(&mut self) -> Result<(), DecodeError> {
        let found = self.u8()?;
        if found != PAYLOAD_VERSION {
            return Err(DecodeError::Version {
                what: self.what,
                found,
            });
        }
        Ok(())
    }
}

fn severity_code(s: Severity) -> u8 {
    match s {
        Severity::Unknown => 0,
        Severity::Trace => 1,
        Severity::Debug => 2,
        Severity::Info => 3,
        Severity::Warn => 4,
        Severity::Error => 5,
        Severity::Fatal => 6,
    }
}

fn severity_of(code: u8) -> Option<Severity> {
    Some(match code {
        0 => Severity::Unknown,
        1 => Severity::Trace,
        2 => Severity::Debug,
        3 => Severity::Info,
        4 => Severity::Warn,
        5 => Severity::Error,
        6 => Severity::Fatal,
        _ => return None,
    })
}

/// Strings longer than this are never put in a block dictionary: long
/// values are rarely repeated, and short ones carry the savings.
pub const MAX_DICT_STRING: usize = 256;

/// A memory block's dictionary of repeated strings (origins, attribute
/// names and values, severity texts): a record refers to an entry by
/// number instead of repeating the bytes. Append-only while the block is
/// open; frozen with it.
#[derive(Debug, Clone, Default)]
pub struct Dict {
    entries: Vec<Box<str>>,
    /// foldhash: looked up for every string of every record appended.
    index: foldhash::HashMap<Box<str>, u32>,
    bytes: usize,
    /// The entry each field of the record encoded last referred to (plus
    /// one; 0 for none). Consecutive records mostly repeat their origin,
    /// severity text and attributes, so comparing with the previous
    /// record's string spares hashing it.
    recent: [u32; RECENT_SLOTS],
    /// The shared string each field's `recent` entry was last put from,
    /// kept alive here so that its address cannot be reused: a record
    /// repeating that very string (records decoded from one request
    /// share them) is known to match without comparing bytes.
    recent_src: [Option<Arc<str>>; RECENT_SLOTS],
    /// Shared severity texts already put, with their entries (plus one):
    /// records of mixed severities alternate between a few texts, which
    /// the one `recent` slot would miss on most records.
    severity_texts: Vec<(Arc<str>, u32)>,
}

/// Shared severity texts a [`Dict`] remembers by address.
const MAX_SEVERITY_TEXTS: usize = 8;

/// Fields of a record with a [`Dict::recent`] slot: agent, file, and the
/// names and values of the first attributes (the severity text has
/// [`Dict::severity_texts`]).
const RECENT_SLOTS: usize = 16;
const SLOT_AGENT: usize = 0;
const SLOT_FILE: usize = 1;
const SLOT_ATTRIBUTES: usize = 2;

/// Entries per dictionary: past it, strings are written inline.
const MAX_DICT_ENTRIES: usize = 1 << 16;
/// Memory of a dictionary entry beyond its bytes: the boxed string in the
/// list and in the index.
const DICT_ENTRY_OVERHEAD: usize = 64;

impl Dict {
    /// Bytes the dictionary holds, for the store's size accounting.
    pub fn accounted(&self) -> usize {
        self.bytes
    }

    /// Strings held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops the lookup index once no more records will be added.
    pub fn freeze(&mut self) {
        self.index = foldhash::HashMap::default();
        self.recent = [0; RECENT_SLOTS];
        self.recent_src = Default::default();
        self.severity_texts = Vec::new();
        self.entries.shrink_to_fit();
        self.bytes = self
            .entries
            .iter()
            .map(|e| e.len() + DICT_ENTRY_OVERHEAD / 2)
            .sum();
    }

    /// Writes a reference to `s` (adding it when new), or `s` inline.
    /// `slot` names the record field, for the [`Dict::recent`] shortcut;
    /// the bytes written are the same either way.
    fn put(&mut self, out: &mut Vec<u8>, s: &str, slot: Option<usize>) {
        if let Some(src) = slot.and_then(|k| self.recent_src.get_mut(k)) {
            *src = None;
        }
        if let Some(recent) = slot.and_then(|k| self.recent.get(k).copied())
            && recent > 0
            && self
                .entries
                .get(recent as usize - 1)
                .is_some_and(|e| **e == *s)
        {
            put_uvarint(out, u64::from(recent));
            return;
        }
        let found = self.lookup_or_add(s);
        if let Some(k) = slot
            && let Some(r) = self.recent.get_mut(k)
        {
            *r = found.map_or(0, |i| i + 1);
        }
        match found {
            Some(i) => put_uvarint(out, u64::from(i) + 1),
            None => {
                put_uvarint(out, 0);
                put_str(out, s);
            }
        }
    }

    /// [`Dict::put`] of a shared string: when it is the very string the
    /// field's slot was last put from, its entry is known without
    /// comparing bytes.
    fn put_shared(&mut self, out: &mut Vec<u8>, s: &Arc<str>, slot: usize) {
        if let (Some(Some(src)), Some(&recent)) = (self.recent_src.get(slot), self.recent.get(slot))
            && recent > 0
            && Arc::ptr_eq(src, s)
        {
            put_uvarint(out, u64::from(recent));
            return;
        }
        self.put(out, s, Some(slot));
        if let Some(src) = self.recent_src.get_mut(slot) {
            *src = Some(Arc::clone(s));
        }
    }

    /// [`Dict::put_shared`] of a record's severity text, remembering a
    /// few texts by address rather than one.
    fn put_severity_text(&mut self, out: &mut Vec<u8>, s: &Arc<str>) {
        if let Some(&(_, id)) = self.severity_texts.iter().find(|(t, _)| Arc::ptr_eq(t, s)) {
            put_uvarint(out, u64::from(id));
            return;
        }
        match self.lookup_or_add(s) {
            Some(i) => {
                put_uvarint(out, u64::from(i) + 1);
                if self.severity_texts.len() < MAX_SEVERITY_TEXTS {
                    self.severity_texts.push((Arc::clone(s), i + 1));
                }
            }
            None => {
                put_uvarint(out, 0);
                put_str(out, s);
            }
        }
    }

    /// The entry holding `s`, added when new; None when `s` is written
    /// inline (too long, or the dictionary is full).
    fn lookup_or_add(&mut self, s: &str) -> Option<u32> {
        if s.len() > MAX_DICT_STRING {
            return None;
        }
        if let Some(&i) = self.index.get(s) {
            return Some(i);
        }
        if self.entries.len() >= MAX_DICT_ENTRIES {
            return None;
        }
        let i = self.entries.len() as u32;
        self.entries.push(s.into());
        self.index.insert(s.into(), i);
        self.bytes += 2 * s.len() + DICT_ENTRY_OVERHEAD;
        Some(i)
    }

    fn get<'a>(&'a self, r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
        match r.uvarint()? {
            0 => r.str(),
            n => usize::try_from(n - 1)
                .ok()
                .and_then(|i| self.entries.get(i))
                .map(|s| &**s)
                .ok_or_else(|| r.err()),
        }
    }
}

/// Encodes everything of a record but its labels (left to a label-set id
/// kept beside it), repeated strings going through `dict`: the form of a
/// record in a memory block and in a WAL batch.
pub fn encode_stored(rec: &LogRecord, dict: &mut Dict, out: &mut Vec<u8>) {
    match &rec.origin {
        None => out.push(0),
        Some(o) => {
            out.push(1);
            dict.put_shared(out, &o.agent_id, SLOT_AGENT);
            dict.put_shared(out, &o.file_id, SLOT_FILE);
            put_uvarint(out, o.offset);
        }
    }
    put_varint(out, rec.time_ms);
    put_varint(out, rec.received_ms);
    out.push(severity_code(rec.severity));
    dict.put_severity_text(out, &rec.severity_text);
    put_str(out, &rec.body);
    put_uvarint(out, rec.attributes.len() as u64);
    for (i, (k, v)) in rec.attributes.iter().enumerate() {
        let slot = SLOT_ATTRIBUTES + 2 * i;
        if slot < RECENT_SLOTS {
            dict.put_shared(out, k, slot);
        } else {
            dict.put(out, k, None);
        }
        let slot = Some(slot + 1).filter(|&s| s < RECENT_SLOTS);
        match v {
            // Differs on every record: a dictionary entry would only cost
            // two allocations, a hash insert and memory (inline is the
            // dictionary's own escape, so readers are unchanged).
            _ if **k == *FILE_OFFSET_ATTRIBUTE => v.with_text(|t| {
                put_uvarint(out, 0);
                put_str(out, t);
            }),
            AttrValue::Text(t) => match slot {
                Some(slot) => dict.put_shared(out, t, slot),
                None => dict.put(out, t, None),
            },
            AttrValue::Int(_) => v.with_text(|t| dict.put(out, t, slot)),
        }
    }
    put_opt_str(out, rec.trace_id.as_deref());
    put_opt_str(out, rec.span_id.as_deref());
}

/// The origin of a stored record, borrowed: (agent id, file id, offset).
pub fn stored_origin<'a>(
    buf: &'a [u8],
    dict: &'a Dict,
) -> Result<Option<(&'a str, &'a str, u64)>, DecodeError> {
    let mut r = Reader::new(buf, "stored log record");
    Ok(match r.u8()? {
        0 => None,
        1 => Some((dict.get(&mut r)?, dict.get(&mut r)?, r.uvarint()?)),
        _ => return Err(r.err()),
    })
}

fn skip_stored_head<'a>(r: &mut Reader<'a>, dict: &'a Dict) -> Result<(), DecodeError> {
    if r.u8()? == 1 {
        dict.get(r)?;
        dict.get(r)?;
        r.uvarint()?;
    }
    Ok(())
}

/// The body of a stored record, without decoding the rest.
pub fn stored_body<'a>(buf: &'a [u8], dict: &'a Dict) -> Result<&'a str, DecodeError> {
    let mut r = Reader::new(buf, "stored log record");
    skip_stored_head(&mut r, dict)?;
    r.varint()?;
    r.varint()?;
    r.u8()?;
    dict.get(&mut r)?;
    r.str()
}

/// Decodes a record written by [`encode_stored`], giving it `labels`.
pub fn decode_stored(buf: &[u8], dict: &Dict, labels: Labels) -> Result<LogRecord, DecodeError> {
    let mut r = Reader::new(buf, "stored log record");
    let origin = match r.u8()? {
        0 => None,
        1 => Some(RecordOrigin {
            agent_id: dict.get(&mut r)?.into(),
            file_id: dict.get(&mut r)?.into(),
            offset: r.uvarint()?,
        }),
        _ => return Err(r.err()),
    };
    let time_ms = r.varint()?;
    let received_ms = r.varint()?;
    let severity = severity_of(r.u8()?).ok_or_else(|| r.err())?;
    let severity_text = Arc::from(dict.get(&mut r)?);
    let body = r.str()?.to_string();
    let n = r.count(2)?;
    let mut attributes = Vec::with_capacity(n);
    for _ in 0..n {
        attributes.push((Arc::from(dict.get(&mut r)?), dict.get(&mut r)?.into()));
    }
    let trace_id = r.opt_str()?;
    let span_id = r.opt_str()?;
    Ok(LogRecord {
        time_ms,
        received_ms,
        severity,
        severity_text,
        labels,
        body,
        attributes: attributes.into(),
        origin,
        trace_id,
        span_id,
    })
}

/// One counter increment carried by a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDelta {
    /// The series, `__name__` included.
    pub labels: Labels,
    pub delta: u64,
}

/// A decoded WAL batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The segment number the store believed current when it logged the
    /// batch: the batch lies in that segment or a later one.
    pub tag: u64,
    /// When the batch was accepted (ms), the counters' activity time.
    pub at_ms: i64,
    pub records: Vec<LogRecord>,
    pub deltas: Vec<CounterDelta>,
}

/// Encodes a batch payload: a string dictionary and a table of label sets
/// shared by the batch's records (records of one request mostly share
/// their resource, file and attribute names), then the records in their
/// stored form, then the counter increments.
pub fn encode_batch(
    tag: u64,
    at_ms: i64,
    records: &[&LogRecord],
    deltas: &[CounterDelta],
    out: &mut Vec<u8>,
) {
    encode_batch_into(tag, at_ms, records, deltas, &mut Vec::new(), out);
}

/// A batch as [`encode_batch_into`] wrote it: each record's stored form
/// lies in the output at its span and refers to `dict` (frozen), so a
/// memory block can keep the bytes as they are instead of encoding the
/// record again.
#[derive(Debug)]
pub struct EncodedBatch {
    pub dict: Dict,
    /// Per record, in order: where its stored form lies in the output.
    pub spans: Vec<std::ops::Range<usize>>,
}

/// As [`encode_batch`], with `scratch` for the records while the
/// dictionary is built (kept by the caller across batches, so large
/// batches do not grow a fresh buffer each time); returns the dictionary
/// and where each record's stored form lies in `out`.
pub fn encode_batch_into(
    tag: u64,
    at_ms: i64,
    records: &[&LogRecord],
    deltas: &[CounterDelta],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> EncodedBatch {
    let mut dict = Dict::default();
    let mut lsets: Vec<&Labels> = Vec::new();
    let mut lset_index: foldhash::HashMap<&Labels, u64> = foldhash::HashMap::default();
    let body = scratch;
    body.clear();
    let mut spans = Vec::with_capacity(records.len());
    let mut one = Vec::new();
    for rec in records {
        // Runs of records share their labels: compare with the previous
        // set before hashing.
        let id = match lsets.last() {
            Some(last) if **last == rec.labels => lsets.len() as u64 - 1,
            _ => *lset_index.entry(&rec.labels).or_insert_with(|| {
                lsets.push(&rec.labels);
                lsets.len() as u64 - 1
            }),
        };
        one.clear();
        encode_stored(rec, &mut dict, &mut one);
        put_uvarint(body, id);
        put_uvarint(body, one.len() as u64);
        spans.push(body.len()..body.len() + one.len());
        body.extend_from_slice(&one);
    }
    out.push(PAYLOAD_VERSION);
    put_uvarint(out, tag);
    put_varint(out, at_ms);
    put_uvarint(out, dict.entries.len() as u64);
    for e in &dict.entries {
        put_str(out, e);
    }
    put_uvarint(out, lsets.len() as u64);
    for l in &lsets {
        put_labels(out, l);
    }
    put_uvarint(out, records.len() as u64);
    let base = out.len();
    out.extend_from_slice(body);
    put_uvarint(out, deltas.len() as u64);
    for d in deltas {
        put_labels(out, &d.labels);
        put_uvarint(out, d.delta);
    }
    for span in &mut spans {
        *span = span.start + base..span.end + base;
    }
    dict.freeze();
    EncodedBatch { dict, spans }
}

pub fn decode_batch(buf: &[u8]) -> Result<Batch, DecodeError> {
    decode_batch_stored(buf).map(|b| b.batch)
}

/// A decoded WAL batch with its records' stored form: where each lies in
/// the payload, and the batch dictionary they refer to.
#[derive(Debug)]
pub struct StoredBatch {
    pub batch: Batch,
    pub dict: Dict,
    /// Per record of `batch.records`: its stored form in the payload.
    pub spans: Vec<std::ops::Range<usize>>,
}

/// Decodes a batch payload, also giving its records' stored form (as
/// [`encode_batch_into`] does), so replay can keep them without encoding.
pub fn decode_batch_stored(buf: &[u8]) -> Result<StoredBatch, DecodeError> {
    let mut r = Reader::new(buf, "log batch");
    r.version()?;
    let tag = r.uvarint()?;
    let at_ms = r.varint()?;
    let n = r.count(1)?;
    let mut dict = Dict::default();
    for _ in 0..n {
        dict.entries.push(r.str()?.into());
    }
    dict.freeze();
    let n = r.count(1)?;
    let mut lsets = Vec::with_capacity(n);
    for _ in 0..n {
        lsets.push(r.labels()?);
    }
    let n = r.count(8)?;
    let mut records = Vec::with_capacity(n);
    let mut spans = Vec::with_capacity(n);
    for _ in 0..n {
        let lset = usize::try_from(r.uvarint()?).map_err(|_| r.err())?;
        let labels = lsets.get(lset).cloned().ok_or_else(|| r.err())?;
        let len = r.count(1)?;
        let span = r.pos..r.pos + len;
        records.push(decode_stored(&r.buf[span.clone()], &dict, labels).map_err(|_| r.err())?);
        spans.push(span);
        r.pos += len;
    }
    let n = r.count(2)?;
    let mut deltas = Vec::with_capacity(n);
    for _ in 0..n {
        let labels = r.labels()?;
        let delta = r.uvarint()?;
        deltas.push(CounterDelta { labels, delta });
    }
    if !r.is_empty() {
        return Err(r.err());
    }
    Ok(StoredBatch {
        batch: Batch {
            tag,
            at_ms,
            records,
            deltas,
        },
        dict,
        spans,
    })
}

/// One counter in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterState {
    pub labels: Labels,
    pub value: u64,
    /// When the series was first incremented (ms).
    pub created_ms: i64,
    /// When it was last incremented (ms).
    pub last_ms: i64,
}

pub fn encode_snapshot(counters: &[CounterState], out: &mut Vec<u8>) {
    out.push(PAYLOAD_VERSION);
    put_uvarint(out, counters.len() as u64);
    for c in counters {
        put_labels(out, &c.labels);
        put_uvarint(out, c.value);
        put_varint(out, c.created_ms);
        put_varint(out, c.last_ms);
    }
}

pub fn decode_snapshot(buf: &[u8]) -> Result<Vec<CounterState>, DecodeError> {
    let mut r = Reader::new(buf, "log counter snapshot");
    r.version()?;
    let n = r.count(4)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(CounterState {
            labels: r.labels()?,
            value: r.uvarint()?,
            created_ms: r.varint()?,
            last_ms: r.varint()?,
        });
    }
    if !r.is_empty() {
        return Err(r.err());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::logs::record::Attributes;
    use proptest::prelude::*;

    pub(crate) fn record(body: &str) -> LogRecord {
        LogRecord {
            time_ms: 1_700_000_000_000,
            received_ms: 1_700_000_000_500,
            severity: Severity::Error,
            severity_text: "ERROR".into(),
            labels: Labels::from_pairs([("host_name", "web-1"), ("severity", "error")]),
            body: body.into(),
            attributes: vec![("log.file.path".into(), "/var/log/app.log".into())].into(),
            origin: Some(RecordOrigin {
                agent_id: "agent-a".into(),
                file_id: "f1".into(),
                offset: 4096,
            }),
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            span_id: None,
        }
    }

    #[test]
    fn batch_round_trips() {
        let a = record("timeout talking to db");
        let mut b = record("второй");
        b.origin = None;
        b.time_ms = -5;
        let deltas = vec![CounterDelta {
            labels: Labels::from_pairs([("__name__", "x_total"), ("severity", "error")]),
            delta: 2,
        }];
        let mut buf = Vec::new();
        encode_batch(7, 123, &[&a, &b], &deltas, &mut buf);
        let got = decode_batch(&buf).unwrap();
        assert_eq!(got.tag, 7);
        assert_eq!(got.at_ms, 123);
        assert_eq!(got.records, vec![a.clone(), b]);
        assert_eq!(got.deltas, deltas);
    }

    #[test]
    fn batch_spans_hold_each_record_s_stored_form() {
        // Records whose fields change from one to the next, so the
        // previous record's entries are sometimes right and sometimes not;
        // every other record's strings are shared ones, as decoding gives
        // them (the same allocation again, or another one), the others
        // fresh copies of the same texts.
        let texts: Vec<Arc<str>> = [
            "ERROR", "WARN", "k0", "k1", "k2", "k3", "k4", "v0", "v1", "v2",
        ]
        .into_iter()
        .map(Arc::from)
        .collect();
        let files: Vec<Arc<str>> = (0..4).map(|f| Arc::from(format!("f{f}"))).collect();
        let text = |i: u64, s: String| -> Arc<str> {
            match texts.iter().find(|t| ***t == *s) {
                Some(t) if i.is_multiple_of(2) => Arc::clone(t),
                _ => s.into(),
            }
        };
        let mut recs = Vec::new();
        for i in 0..40u64 {
            let mut r = record(&format!("line {i}"));
            r.severity_text = text(i, ["ERROR", "WARN"][(i % 3 == 0) as usize].to_string());
            if let Some(o) = r.origin.as_mut() {
                o.file_id = if i.is_multiple_of(2) {
                    Arc::clone(&files[(i / 10) as usize])
                } else {
                    format!("f{}", i / 10).into()
                };
                o.offset = i * 77;
            }
            let mut list: Vec<(Arc<str>, AttrValue)> = (0..(i % 9))
                .map(|k| {
                    let name = format!("k{}", (k + i / 4) % 5);
                    // Integers too (written as their digits), some
                    // repeated from record to record, some not.
                    let value = match (k + i) % 4 {
                        0 => AttrValue::Int(-7),
                        1 => AttrValue::Int(i as i64 * 1000),
                        _ => text(i, format!("v{}", k % 3)).into(),
                    };
                    (text(i, name), value)
                })
                .collect();
            list.sort();
            // The offset as a decoder keeps it apart, or in the list.
            r.attributes = match i % 5 {
                2 => Attributes::new(list.into(), Some(i as i64 * 77)),
                3 => {
                    list.push((FILE_OFFSET_ATTRIBUTE.into(), AttrValue::Int(i as i64 * 77)));
                    list.sort();
                    list.into()
                }
                _ => list.into(),
            };
            recs.push(r);
        }
        let refs: Vec<&LogRecord> = recs.iter().collect();
        let deltas = vec![CounterDelta {
            labels: Labels::from_pairs([("__name__", "x_total")]),
            delta: 40,
        }];
        let mut plain = Vec::new();
        encode_batch(3, 4, &refs, &deltas, &mut plain);
        // Into a buffer that already holds something, with a used scratch.
        let mut out = b"frame header".to_vec();
        let mut scratch = b"leftovers".to_vec();
        let enc = encode_batch_into(3, 4, &refs, &deltas, &mut scratch, &mut out);
        assert_eq!(&out[12..], &plain[..]);
        assert_eq!(enc.spans.len(), recs.len());
        for ((r, span), stored) in recs.iter().zip(&enc.spans).zip(&refs) {
            let got = decode_stored(&out[span.clone()], &enc.dict, r.labels.clone()).unwrap();
            assert_eq!(&got, *stored);
        }
        let back = decode_batch_stored(&plain).unwrap();
        assert_eq!(back.batch.records, recs);
        assert_eq!(back.batch.deltas, deltas);
        let shifted: Vec<_> = enc.spans.iter().map(|s| s.start - 12..s.end - 12).collect();
        assert_eq!(back.spans, shifted);
        assert_eq!(back.dict.accounted(), enc.dict.accounted());
        assert_eq!(back.dict.len(), enc.dict.len());
    }

    #[test]
    fn snapshot_round_trips_and_versions_are_checked() {
        let s = vec![CounterState {
            labels: Labels::from_pairs([("__name__", "x_total")]),
            value: u64::MAX,
            created_ms: 1,
            last_ms: 2,
        }];
        let mut buf = Vec::new();
        encode_snapshot(&s, &mut buf);
        assert_eq!(decode_snapshot(&buf).unwrap(), s);
        buf[0] = 9;
        let err = decode_snapshot(&buf).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }

    #[test]
    fn stored_records_share_repeated_strings() {
        let a = record("first");
        let mut b = record("second");
        let mut list: Vec<_> = b
            .attributes
            .iter()
            .map(|(k, v)| (Arc::clone(k), v.clone()))
            .collect();
        list.push(("long".into(), "v".repeat(MAX_DICT_STRING + 1).into()));
        b.attributes = list.into();
        let mut dict = Dict::default();
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        encode_stored(&a, &mut dict, &mut ea);
        encode_stored(&b, &mut dict, &mut eb);
        // The second record's origin, file path and severity text are the
        // first one's dictionary entries; the long value stays inline.
        let entries = dict.entries.len();
        let mut again = Vec::new();
        encode_stored(&a, &mut dict, &mut again);
        assert_eq!(dict.entries.len(), entries);
        // agent, file, severity text, attribute name and value, and the
        // second record's attribute name "long".
        assert_eq!(entries, 6);
        assert!(eb.len() > MAX_DICT_STRING);
        dict.freeze();
        assert_eq!(decode_stored(&ea, &dict, a.labels.clone()).unwrap(), a);
        assert_eq!(decode_stored(&eb, &dict, b.labels.clone()).unwrap(), b);
        assert_eq!(stored_body(&eb, &dict).unwrap(), "second");
        assert_eq!(
            stored_origin(&ea, &dict).unwrap(),
            Some(("agent-a", "f1", 4096))
        );
        // A reference past the dictionary is an error, not a panic.
        assert!(decode_stored(&ea, &Dict::default(), Labels::empty()).is_err());
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_batch(&bytes);
            let _ = decode_batch_stored(&bytes);
            let _ = decode_snapshot(&bytes);
            let _ = decode_stored(&bytes, &Dict::default(), Labels::empty());
            let _ = stored_body(&bytes, &Dict::default());
        }

        #[test]
        fn truncated_batches_are_errors(cut in 0usize..200) {
            let a = record("some body text");
            let mut buf = Vec::new();
            encode_batch(1, 2, &[&a], &[], &mut buf);
            let cut = cut.min(buf.len() - 1);
            prop_assert!(decode_batch(&buf[..cut]).is_err());
            prop_assert!(decode_batch_stored(&buf[..cut]).is_err());
        }
    }
}
