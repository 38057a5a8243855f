//! Turning a file's bytes into records: `LineSplitter` cuts lines (bounded
//! length: a longer line is cut, marked truncated, and its rest skipped up
//! to the newline; invalid UTF-8 replaced), `Assembler` joins lines into
//! multiline records by a start pattern with a flush timeout driven by the
//! caller's clock. Offsets are byte offsets in the file: a record spans
//! `[start, end)`, `end` just past its last newline, so `end` is where a
//! reader resumes once the record is acknowledged.

use std::time::{Duration, SystemTime};

use super::config::Multiline;

/// One complete line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Offset of its first byte.
    pub start: u64,
    /// Offset just past its newline.
    pub end: u64,
    /// Text without the newline (and without a `\r` before it).
    pub text: String,
    /// The line was longer than the limit and was cut.
    pub truncated: bool,
}

/// Splits a byte stream into lines of at most `max` bytes.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max: usize,
    /// Bytes consumed so far (the file offset of the next byte).
    pos: u64,
    /// Offset where the current partial line starts.
    line_start: u64,
    buf: Vec<u8>,
    /// The current line passed `max`: drop bytes up to the newline.
    skipping: bool,
}

impl LineSplitter {
    pub fn new(max: usize, pos: u64) -> Self {
        LineSplitter {
            max,
            pos,
            line_start: pos,
            buf: Vec::new(),
            skipping: false,
        }
    }

    /// Offset of the next byte to read.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Bytes held for a line whose newline has not been read yet.
    #[cfg(test)]
    pub fn partial_len(&self) -> usize {
        self.buf.len()
    }

    /// The partial line at the end of a file that will not grow any more
    /// (closed after rotation): its last line needs no newline.
    pub fn finish(&mut self) -> Option<Line> {
        if self.pos == self.line_start {
            return None;
        }
        let bytes = std::mem::take(&mut self.buf);
        let line = Line {
            start: self.line_start,
            end: self.pos,
            text: into_text(bytes),
            truncated: self.skipping,
        };
        self.line_start = self.pos;
        self.skipping = false;
        Some(line)
    }

    /// Feeds the next bytes of the file; complete lines go to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Line>) {
        while !chunk.is_empty() {
            let newline = memchr::memchr(b'\n', chunk);
            let (segment, rest) = match newline {
                Some(i) => (&chunk[..i], &chunk[i + 1..]),
                None => (chunk, &chunk[chunk.len()..]),
            };
            if !self.skipping {
                let room = self.max - self.buf.len().min(self.max);
                if segment.len() > room {
                    self.buf.extend_from_slice(&segment[..room]);
                    self.skipping = true;
                } else {
                    self.buf.extend_from_slice(segment);
                }
            }
            let consumed = segment.len() as u64 + u64::from(newline.is_some());
            self.pos += consumed;
            if newline.is_some() {
                let mut bytes = std::mem::take(&mut self.buf);
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
                out.push(Line {
                    start: self.line_start,
                    end: self.pos,
                    text: into_text(bytes),
                    truncated: self.skipping,
                });
                self.line_start = self.pos;
                self.skipping = false;
            }
            chunk = rest;
        }
    }
}

fn into_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A record assembled from one or more lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub start: u64,
    pub end: u64,
    pub text: String,
    pub lines: usize,
    pub truncated: bool,
}

impl From<Line> for RawRecord {
    fn from(line: Line) -> Self {
        RawRecord {
            start: line.start,
            end: line.end,
            text: line.text,
            lines: 1,
            truncated: line.truncated,
        }
    }
}

/// Joins lines into records. Without a multiline setting every line is a
/// record.
#[derive(Debug, Clone)]
pub struct Assembler {
    multiline: Option<Multiline>,
    max_bytes: usize,
    pending: Option<(RawRecord, SystemTime)>,
}

impl Assembler {
    /// `max_bytes` bounds a record's text (the input's line limit).
    pub fn new(multiline: Option<Multiline>, max_bytes: usize) -> Self {
        Assembler {
            multiline,
            max_bytes,
            pending: None,
        }
    }

    /// Is a record waiting for more lines?
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Adds a line read at `now`; returns the records it completes.
    pub fn push(&mut self, line: Line, now: SystemTime, out: &mut Vec<RawRecord>) {
        let Some(m) = &self.multiline else {
            out.push(line.into());
            return;
        };
        let continues = m
            .continuation
            .as_ref()
            .is_some_and(|c| c.is_match(&line.text))
            || !m.start.is_match(&line.text);
        match &mut self.pending {
            Some((record, last)) if continues => {
                record.end = line.end;
                record.truncated |= line.truncated;
                if record.lines >= m.max_lines
                    || record.text.len() + 1 + line.text.len() > self.max_bytes
                {
                    // The line's bytes are covered (end moved), its text
                    // dropped: one huge trace stays one record.
                    record.truncated = true;
                } else {
                    record.text.push('\n');
                    record.text.push_str(&line.text);
                    record.lines += 1;
                }
                *last = now;
            }
            _ => {
                if let Some((record, _)) = self.pending.take() {
                    out.push(record);
                }
                self.pending = Some((line.into(), now));
            }
        }
    }

    /// The pending record, if its last line is older than the flush
    /// timeout at `now`.
    pub fn flush_due(&mut self, now: SystemTime) -> Option<RawRecord> {
        let timeout = self
            .multiline
            .as_ref()
            .map_or(Duration::ZERO, |m| m.flush_timeout);
        let (_, last) = self.pending.as_ref()?;
        if now.duration_since(*last).unwrap_or(Duration::ZERO) >= timeout {
            self.pending.take().map(|(r, _)| r)
        } else {
            None
        }
    }

    /// The pending record, whatever its age (end of a file).
    pub fn flush(&mut self) -> Option<RawRecord> {
        self.pending.take().map(|(r, _)| r)
    }
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Line> {
        let mut s = LineSplitter::new(max, 0);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        out
    }

    #[test]
    fn lines_across_chunks_with_offsets() {
        let lines = split(100, &[b"ab", b"c\nde", b"f\r\n", b"gh"]);
        assert_eq!(
            lines,
            [
                Line {
                    start: 0,
                    end: 4,
                    text: "abc".into(),
                    truncated: false
                },
                Line {
                    start: 4,
                    end: 9,
                    text: "def".into(),
                    truncated: false
                },
            ]
        );
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_skipped() {
        let lines = split(4, &[b"0123456", b"789\nok\n"]);
        assert_eq!(lines[0].text, "0123");
        assert!(lines[0].truncated);
        assert_eq!((lines[0].start, lines[0].end), (0, 11));
        assert_eq!(
            lines[1],
            Line {
                start: 11,
                end: 14,
                text: "ok".into(),
                truncated: false
            }
        );
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let lines = split(100, &[b"a\xffb\n"]);
        assert_eq!(lines[0].text, "a\u{fffd}b");
    }

    #[test]
    fn a_partial_line_waits_for_its_newline() {
        let mut s = LineSplitter::new(100, 10);
        let mut out = Vec::new();
        s.feed(b"abc", &mut out);
        assert!(out.is_empty());
        assert_eq!((s.pos(), s.partial_len()), (13, 3));
        s.feed(b"\n", &mut out);
        assert_eq!((out[0].start, out[0].end), (10, 14));
    }

    fn assemble(start: &str, cont: Option<&str>, text: &str) -> Vec<RawRecord> {
        let m = Multiline {
            start: Regex::new(start).unwrap(),
            continuation: cont.map(|c| Regex::new(c).unwrap()),
            flush_timeout: Duration::from_secs(2),
            max_lines: 500,
        };
        let mut a = Assembler::new(Some(m), 1 << 16);
        let mut out = Vec::new();
        let now = SystemTime::UNIX_EPOCH;
        for line in split(1 << 16, &[text.as_bytes()]) {
            a.push(line, now, &mut out);
        }
        out.extend(a.flush());
        out
    }

    #[test]
    fn java_stack_trace_is_one_record() {
        let text = "2024-01-01 ERROR request failed\n\
                    java.lang.IllegalStateException: boom\n\
                    \tat com.example.A.run(A.java:10)\n\
                    Caused by: java.io.IOException: closed\n\
                    \tat com.example.B.read(B.java:5)\n\
                    \t... 3 more\n\
                    2024-01-01 INFO next\n";
        let records = assemble(r"^\d{4}-\d\d-\d\d", None, text);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].lines, 6);
        assert_eq!(records[0].start, 0);
        assert_eq!(records[1].start, records[0].end);
        let records = assemble(r"^\S", Some(r"^(\s|Caused by:)"), text);
        assert_eq!(records.len(), 3, "{records:?}");
        assert!(
            records[1]
                .text
                .starts_with("java.lang.IllegalStateException")
        );
        assert!(records[1].text.ends_with("\t... 3 more"));
    }

    #[test]
    fn python_traceback_is_one_record() {
        let text = "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    main()\nValueError: bad input\nnext line\n";
        let records = assemble(
            r"^\S",
            Some(r"^(\s|\w[\w.]*(Error|Exception|Exit|Interrupt)\b)"),
            text,
        );
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(records[0].lines, 4);
        assert!(records[0].text.ends_with("ValueError: bad input"));
    }

    #[test]
    fn flush_timeout_follows_the_clock() {
        let m = Multiline {
            start: Regex::new(r"^\S").unwrap(),
            continuation: None,
            flush_timeout: Duration::from_secs(2),
            max_lines: 500,
        };
        let mut a = Assembler::new(Some(m), 1 << 16);
        let t0 = SystemTime::UNIX_EPOCH;
        let mut out = Vec::new();
        for line in split(100, &[b"start\n  more\n"]) {
            a.push(line, t0, &mut out);
        }
        assert!(out.is_empty());
        assert!(a.flush_due(t0 + Duration::from_millis(1999)).is_none());
        let r = a.flush_due(t0 + Duration::from_secs(2)).unwrap();
        assert_eq!((r.lines, r.end), (2, 13));
        assert!(!a.has_pending());
    }

    #[test]
    fn max_lines_truncates_but_covers_bytes() {
        let m = Multiline {
            start: Regex::new(r"^\S").unwrap(),
            continuation: None,
            flush_timeout: Duration::from_secs(2),
            max_lines: 2,
        };
        let mut a = Assembler::new(Some(m), 1 << 16);
        let mut out = Vec::new();
        for line in split(100, &[b"a\n b\n c\n d\n"]) {
            a.push(line, SystemTime::UNIX_EPOCH, &mut out);
        }
        let r = a.flush().unwrap();
        assert_eq!((r.text.as_str(), r.end, r.truncated), ("a\n b", 11, true));
    }
}
