//! OTLP/protobuf `ExportLogsServiceRequest` bytes straight to a
//! [`LogsBatch`], without building the request's prost structures first.
//!
//! The result is the one [`super::logs::translate_logs`] gives for the
//! request prost decodes from the same bytes, and the error (message
//! included) is the one prost's decoding gives. The four outer messages
//! (request, `ResourceLogs`, `ScopeLogs`, `LogRecord`) are decode-only
//! [`Message`] implementations whose `merge_field` mirrors the generated
//! code field by field — same `prost::encoding` merge functions, same
//! unknown-field skipping, same recursion limit (prost passes the context
//! down), same error locations — but hands each log record to the shared
//! [`BatchBuilder`] as soon as it is read, its strings moved or shared
//! rather than copied out of a request that is then dropped. A record in
//! the encoding OTLP exporters write is read without prost's field loop
//! ([`plain_record`]), which gives up, for prost's reading, at anything
//! else. Everything below a record's fields (`AnyValue`, `KeyValue`,
//! `Resource`, `InstrumentationScope`) not in that plain encoding is
//! decoded into prost's own types, so repeated and merged fields, oneofs
//! and their rendering are prost's and [`super::attributes`]'.
//!
//! The [`Message`] implementations here are decode-only: they are never
//! encoded (`encode_raw` writes nothing) and live only inside
//! [`decode_logs`].

use std::sync::Arc;

use bytes::{Buf, BufMut};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::encoding::{
    DecodeContext, WireType, bytes as pbytes, decode_varint, fixed32, fixed64, int32, message,
    skip_field, string, uint32,
};
use prost::{DecodeError, Message};

use super::logs::{BatchBuilder, LogsBatch, LogsOptions, PlainValue, RecentTexts, RecordParts};
use crate::logs::record::LogRecord;

/// Decodes a protobuf `ExportLogsServiceRequest` received at
/// `received_ms` and translates it; `Err` exactly when prost cannot
/// decode `bytes`, with prost's error.
pub fn decode_logs(
    bytes: &[u8],
    received_ms: i64,
    opts: &LogsOptions,
) -> Result<LogsBatch, DecodeError> {
    let mut batch = BatchBuilder::new(received_ms, opts);
    batch.reserve(reserve_hint(bytes.len()));
    let mut request = RequestSink { batch: &mut batch };
    request.merge(bytes)?;
    Ok(batch.finish())
}

/// How many records to make room for in a request of `len` bytes: one
/// per 128 bytes (an agent's records take about 250 on the wire), at
/// most [`MAX_RESERVED_RECORDS`]; past it the vector grows as usual.
/// The size alone, because counting the records exactly means reading the
/// request twice: a request is megabytes, and reading each record's first
/// byte ahead of decoding it was a cache miss per record (6% of the
/// collector's time), more than the vector's unused room costs.
fn reserve_hint(len: usize) -> usize {
    (len / 128).min(MAX_RESERVED_RECORDS)
}

/// Most records reserved up front for one request (an agent sends at
/// most 8192 per request).
const MAX_RESERVED_RECORDS: usize = 16_384;

/// Names the field an error came from, as prost's generated code does.
fn at(message: &'static str, field: &'static str) -> impl FnOnce(DecodeError) -> DecodeError {
    move |mut e| {
        e.push(message, field);
        e
    }
}

/// `ExportLogsServiceRequest`: each `resource_logs` is one resource of
/// the batch.
#[derive(Debug)]
struct RequestSink<'b, 'o> {
    batch: &'b mut BatchBuilder<'o>,
}

impl Message for RequestSink<'_, '_> {
    fn encode_raw(&self, _buf: &mut impl BufMut) {}

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => {
                self.batch.begin_resource();
                let mut rl = ResourceLogsSink {
                    batch: self.batch,
                    resource: None,
                    schema_url: String::new(),
                };
                message::merge(wire_type, &mut rl, buf, ctx)
                    .map_err(at("ExportLogsServiceRequest", "resource_logs"))?;
                let resource = rl.resource;
                self.batch.end_resource(resource.as_ref());
                Ok(())
            }
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        0
    }

    fn clear(&mut self) {}
}

/// `ResourceLogs`: the resource (merged as prost merges a repeated
/// message field) is complete only at its end, when the caller closes it.
#[derive(Debug)]
struct ResourceLogsSink<'b, 'o> {
    batch: &'b mut BatchBuilder<'o>,
    resource: Option<Resource>,
    /// Checked (UTF-8) and dropped.
    schema_url: String,
}

impl Message for ResourceLogsSink<'_, '_> {
    fn encode_raw(&self, _buf: &mut impl BufMut) {}

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "ResourceLogs";
        match tag {
            1 => message::merge(
                wire_type,
                self.resource.get_or_insert_with(Resource::default),
                buf,
                ctx,
            )
            .map_err(at(NAME, "resource")),
            2 => {
                let mut sl = ScopeLogsSink {
                    batch: self.batch,
                    scope: None,
                    schema_url: String::new(),
                };
                message::merge(wire_type, &mut sl, buf, ctx).map_err(at(NAME, "scope_logs"))
            }
            3 => string::merge(wire_type, &mut self.schema_url, buf, ctx)
                .map_err(at(NAME, "schema_url")),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        0
    }

    fn clear(&mut self) {}
}

/// `ScopeLogs`: each log record goes to the batch once read; the scope
/// and schema URL are checked and dropped.
#[derive(Debug)]
struct ScopeLogsSink<'b, 'o> {
    batch: &'b mut BatchBuilder<'o>,
    scope: Option<InstrumentationScope>,
    schema_url: String,
}

impl Message for ScopeLogsSink<'_, '_> {
    fn encode_raw(&self, _buf: &mut impl BufMut) {}

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "ScopeLogs";
        match tag {
            1 => message::merge(
                wire_type,
                self.scope.get_or_insert_with(InstrumentationScope::default),
                buf,
                ctx,
            )
            .map_err(at(NAME, "scope")),
            2 => {
                if wire_type == WireType::LengthDelimited {
                    let chunk = buf.chunk();
                    let mut rest = chunk;
                    if let Some(record) = length_delimited(&mut rest) {
                        let used = chunk.len() - rest.len();
                        let (previous, texts) = self.batch.sharing();
                        if let Some(parts) = plain_record(record, previous, texts) {
                            buf.advance(used);
                            self.batch.record(parts);
                            return Ok(());
                        }
                    }
                }
                let (previous, texts) = self.batch.sharing();
                let mut r = RecordSink::new(previous, texts);
                message::merge(wire_type, &mut r, buf, ctx).map_err(at(NAME, "log_records"))?;
                let parts = r.parts;
                self.batch.record(parts);
                Ok(())
            }
            3 => string::merge(wire_type, &mut self.schema_url, buf, ctx)
                .map_err(at(NAME, "schema_url")),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        0
    }

    fn clear(&mut self) {}
}

/// `LogRecord`, its fields decoded by the same functions prost's
/// generated code calls; attributes are handed to [`super::logs::RecordAttributes`]
/// one by one instead of collected. The severity text and the attributes
/// in their plainest encoding are read as shared text (see
/// [`merge_text`], [`plain_attribute`]), which gives the same record
/// prost's decoding does.
#[derive(Debug)]
struct RecordSink<'p> {
    /// The record decoded before this one: attribute strings equal to its
    /// are shared with it rather than copied.
    previous: Option<&'p LogRecord>,
    /// The request's severity texts so far, shared the same way.
    texts: &'p mut RecentTexts,
    /// The fields the batch takes, as read so far.
    parts: RecordParts,
    /// Checked and dropped.
    dropped_attributes_count: u32,
    flags: u32,
    event_name: String,
}

impl<'p> RecordSink<'p> {
    fn new(previous: Option<&'p LogRecord>, texts: &'p mut RecentTexts) -> RecordSink<'p> {
        RecordSink {
            previous,
            texts,
            parts: RecordParts::default(),
            dropped_attributes_count: 0,
            flags: 0,
            event_name: String::new(),
        }
    }
}

impl Message for RecordSink<'_> {
    fn encode_raw(&self, _buf: &mut impl BufMut) {}

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "LogRecord";
        match tag {
            1 => fixed64::merge(wire_type, &mut self.parts.time_unix_nano, buf, ctx)
                .map_err(at(NAME, "time_unix_nano")),
            2 => int32::merge(wire_type, &mut self.parts.severity_number, buf, ctx)
                .map_err(at(NAME, "severity_number")),
            3 => {
                let text = merge_text(wire_type, self.texts, buf, ctx)
                    .map_err(at(NAME, "severity_text"))?;
                self.parts.severity_text = Some(text);
                Ok(())
            }
            5 => message::merge(
                wire_type,
                self.parts.body.get_or_insert_with(AnyValue::default),
                buf,
                ctx,
            )
            .map_err(at(NAME, "body")),
            6 => {
                let previous = self.previous.map_or(&[][..], |p| &**p.attributes.shared());
                if let Some((key, value, used)) = plain_attribute(wire_type, buf.chunk())
                    && self
                        .parts
                        .attributes
                        .push_plain(key, value, previous)
                        .is_some()
                {
                    buf.advance(used);
                    return Ok(());
                }
                // As `message::merge_repeated`: a new element per occurrence.
                let mut kv = KeyValue::default();
                message::merge(wire_type, &mut kv, buf, ctx).map_err(at(NAME, "attributes"))?;
                self.parts.attributes.push_otlp(kv, previous);
                Ok(())
            }
            7 => uint32::merge(wire_type, &mut self.dropped_attributes_count, buf, ctx)
                .map_err(at(NAME, "dropped_attributes_count")),
            8 => fixed32::merge(wire_type, &mut self.flags, buf, ctx).map_err(at(NAME, "flags")),
            9 => pbytes::merge(wire_type, &mut self.parts.trace_id, buf, ctx)
                .map_err(at(NAME, "trace_id")),
            10 => pbytes::merge(wire_type, &mut self.parts.span_id, buf, ctx)
                .map_err(at(NAME, "span_id")),
            11 => fixed64::merge(wire_type, &mut self.parts.observed_time_unix_nano, buf, ctx)
                .map_err(at(NAME, "observed_time_unix_nano")),
            12 => string::merge(wire_type, &mut self.event_name, buf, ctx)
                .map_err(at(NAME, "event_name")),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        0
    }

    fn clear(&mut self) {
        self.parts = RecordParts::default();
        self.dropped_attributes_count = 0;
        self.flags = 0;
        self.event_name.clear();
    }
}

/// A string field as prost's `string::merge` reads it (a field read
/// again replaces the value), as shared text: a copy kept in `texts` when
/// the bytes are its text. Only well-formed fields are read here;
/// anything else goes through prost's own function, for its error.
fn merge_text(
    wire_type: WireType,
    texts: &mut RecentTexts,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<Arc<str>, DecodeError> {
    if wire_type == WireType::LengthDelimited {
        let chunk = buf.chunk();
        let mut rest = chunk;
        if let Some((bytes, used)) =
            length_delimited(&mut rest).map(|b| (b, chunk.len() - rest.len()))
            && let Some(text) = texts.shared(bytes)
        {
            buf.advance(used);
            return Ok(text);
        }
    }
    let mut s = String::new();
    string::merge(wire_type, &mut s, buf, ctx)?;
    Ok(Arc::from(s))
}

/// A varint at the start of `buf` as prost reads it, `buf` moved past
/// it; keys and most lengths (one or two bytes) without a call.
#[inline]
fn varint(buf: &mut &[u8]) -> Option<u64> {
    match **buf {
        [b, ref rest @ ..] if b < 0x80 => {
            *buf = rest;
            Some(u64::from(b))
        }
        [b0, b1, ref rest @ ..] if b1 < 0x80 => {
            *buf = rest;
            Some(u64::from(b0 & 0x7f) | u64::from(b1) << 7)
        }
        _ => decode_varint(buf).ok(),
    }
}

/// A little-endian fixed64 at the start of `buf`, `buf` moved past it.
fn fixed_u64(buf: &mut &[u8]) -> Option<u64> {
    let (bytes, rest) = buf.split_first_chunk::<8>()?;
    *buf = rest;
    Some(u64::from_le_bytes(*bytes))
}

/// A length-delimited value at the start of `buf` (its length varint
/// then its bytes, all in `buf`), `buf` moved past it.
fn length_delimited<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(buf)?).ok()?;
    let (bytes, rest) = buf.split_at_checked(len)?;
    *buf = rest;
    Some(bytes)
}

/// A `LogRecord`'s bytes (the field's content) in the encoding OTLP
/// exporters write, read without prost's field loop: each field once or
/// more under its one-byte key, of its own wire type, the body a string
/// value given once, the attributes as [`plain_attribute`] reads them. The
/// record's parts are what [`RecordSink`] gives for the same bytes (a
/// scalar or string field read again replaces the value, attributes
/// add up, ids and event name as prost reads them); None for anything
/// else — another field, another encoding, text that is not UTF-8, bytes
/// cut short — which [`RecordSink`] then reads, for prost's record or
/// error. `previous` and `texts` are the strings to share.
fn plain_record(
    mut buf: &[u8],
    previous: Option<&LogRecord>,
    texts: &mut RecentTexts,
) -> Option<RecordParts> {
    let mut parts = RecordParts::default();
    while let [key, ref rest @ ..] = *buf {
        buf = rest;
        match key {
            // time_unix_nano = 1, fixed64
            0x09 => parts.time_unix_nano = fixed_u64(&mut buf)?,
            // severity_number = 2, int32 (the varint's low bits, as prost)
            0x10 => parts.severity_number = varint(&mut buf)? as i32,
            // severity_text = 3
            0x1a => parts.severity_text = Some(texts.shared(length_delimited(&mut buf)?)?),
            // body = 5: an AnyValue holding only string_value = 1, once
            // (a second body merges into the first: prost's to read).
            0x2a => {
                if parts.body.is_some() {
                    return None;
                }
                let mut any = length_delimited(&mut buf)?;
                let (&0x0a, after) = any.split_first()? else {
                    return None;
                };
                any = after;
                let text = length_delimited(&mut any)?;
                if !any.is_empty() {
                    return None;
                }
                let text = std::str::from_utf8(text).ok()?;
                parts.body = Some(AnyValue {
                    value: Some(Value::StringValue(text.to_owned())),
                });
            }
            // attributes = 6
            0x32 => {
                let (key, value, used) = plain_attribute(WireType::LengthDelimited, buf)?;
                let previous = previous.map_or(&[][..], |p| &**p.attributes.shared());
                parts.attributes.push_plain(key, value, previous)?;
                buf = buf.get(used..)?;
            }
            // dropped_attributes_count = 7, uint32: read and dropped
            0x38 => {
                varint(&mut buf)?;
            }
            // flags = 8, fixed32: read and dropped
            0x45 => buf = buf.get(4..)?,
            // trace_id = 9, span_id = 10
            0x4a => length_delimited(&mut buf)?.clone_into(&mut parts.trace_id),
            0x52 => length_delimited(&mut buf)?.clone_into(&mut parts.span_id),
            // observed_time_unix_nano = 11, fixed64
            0x59 => parts.observed_time_unix_nano = fixed_u64(&mut buf)?,
            // event_name = 12: checked and dropped
            0x62 => {
                std::str::from_utf8(length_delimited(&mut buf)?).ok()?;
            }
            _ => return None,
        }
    }
    Some(parts)
}

/// A `KeyValue` field in the encoding every OTLP exporter writes for a
/// string or integer attribute — key (field 1), then the value (field 2)
/// holding only `string_value` (1) or `int_value` (3), each once — read
/// from `chunk`, the bytes from the field's length on: the key's bytes,
/// the value, and how many bytes of `chunk` the field takes (UTF-8 is
/// left to [`super::logs::RecordAttributes::push_plain`]). None for any other
/// encoding, which prost's `KeyValue` decoding then reads; for these
/// bytes it gives the same key and value (one occurrence of each field,
/// nothing to merge), and no recursion-limit error can arise two levels
/// below a record.
fn plain_attribute(wire_type: WireType, chunk: &[u8]) -> Option<(&[u8], PlainValue<'_>, usize)> {
    if wire_type != WireType::LengthDelimited {
        return None;
    }
    let mut rest = chunk;
    let mut kv = length_delimited(&mut rest)?;
    let used = chunk.len() - rest.len();
    let (&key_tag, after) = kv.split_first()?;
    kv = after;
    if key_tag != 0x0a {
        return None;
    }
    let key = length_delimited(&mut kv)?;
    let (&value_tag, after) = kv.split_first()?;
    kv = after;
    if value_tag != 0x12 {
        return None;
    }
    let mut any = length_delimited(&mut kv)?;
    if !kv.is_empty() {
        return None;
    }
    let (&oneof_tag, after) = any.split_first()?;
    any = after;
    let value = match oneof_tag {
        0x0a => {
            let text = length_delimited(&mut any)?;
            if !any.is_empty() {
                return None;
            }
            PlainValue::Text(text)
        }
        0x18 => {
            let i = varint(&mut any)?;
            if !any.is_empty() {
                return None;
            }
            // int64 on the wire: the varint's bits, as prost reads them.
            PlainValue::Int(i as i64)
        }
        _ => return None,
    };
    Some((key, value, used))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
