//! Error groups: log lines from warn up are grouped by template mining, so
//! that a thousand "Failed password for root from 10.0.0.7 port 5022" lines
//! are one group with one count and one stable id.
//!
//! [`mask`] replaces what is variable by nature (numbers, ids, hashes,
//! addresses, timestamps, quantities) with `<*>`; [`miner`] clusters the
//! masked lines in a bounded Drain-style parse tree. One configuration
//! serves every log format. This module also owns the offline command
//! behind `tocsinctl logs patterns FILE [--assign]`.
//!
//! Invariants: every line gets a group id; the number of groups is capped
//! (lines beyond the cap go to the counted `overflow` group); ids are fixed
//! when a group is founded and printed as 16 hex digits.

pub mod mask;
#[cfg(test)]
mod mask_oracle;
pub mod miner;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

pub use miner::{Group, GroupId, Miner, MinerConfig, MinerStats};

/// What can go wrong while mining or restoring groups.
#[derive(Debug, thiserror::Error)]
pub enum PatternsError {
    /// The input file could not be opened.
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading the input failed part way.
    #[error("cannot read {path} at line {line}")]
    Read {
        path: PathBuf,
        line: u64,
        #[source]
        source: std::io::Error,
    },
    /// Writing the result failed.
    #[error("cannot write the result")]
    Write(#[source] std::io::Error),
    /// A stored group id is not 16 hex digits (nor `overflow`).
    #[error("invalid error-group id {0:?}: expected 16 hex digits")]
    BadGroupId(String),
    /// A restored group reuses an id already present.
    #[error("error group {0} is already present")]
    DuplicateGroup(String),
    /// Restoring would exceed the group cap.
    #[error("cannot restore more than {0} error groups (the cap)")]
    TooManyGroups(usize),
    /// Restoring would put more groups in one leaf than the leaf cap.
    #[error(
        "cannot restore more than {0} error groups of one token count and first token (the leaf cap)"
    )]
    LeafFull(usize),
}

/// Mines `input` with the default configuration. Without `assign`, prints
/// one line per template, `COUNT\tID\tTEMPLATE`, by count descending (ties
/// by id); with `assign`, prints the group id of every input line, one per
/// line, in input order. Invalid UTF-8 is replaced, `\r\n` endings accepted.
pub fn run_patterns_cli(
    input: &Path,
    assign: bool,
    out: &mut dyn Write,
) -> Result<(), PatternsError> {
    let file = File::open(input).map_err(|source| PatternsError::Open {
        path: input.to_owned(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let mut out = BufWriter::new(out);
    let mut miner = Miner::default();
    // One byte over the miner's cap, so that the miner sees and counts the cut.
    let max_line = miner.config().max_line_bytes.saturating_add(1);
    let mut raw = Vec::new();
    let mut line_no = 0u64;
    loop {
        line_no += 1;
        let more = read_line_capped(&mut reader, &mut raw, max_line).map_err(|source| {
            PatternsError::Read {
                path: input.to_owned(),
                line: line_no,
                source,
            }
        })?;
        if !more {
            break;
        }
        let text = String::from_utf8_lossy(&raw);
        let id = miner.observe(text.strip_suffix('\r').unwrap_or(&text));
        if assign {
            writeln!(out, "{id}").map_err(PatternsError::Write)?;
        }
    }
    if !assign {
        write_templates(&miner, &mut out)?;
    }
    out.flush().map_err(PatternsError::Write)
}

/// Reads the next line into `buf` without its `\n`, keeping at most `max`
/// bytes of it (the rest of a longer line is skipped, so a file without
/// newlines cannot exhaust memory). Returns false at the end of the input.
fn read_line_capped(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    buf.clear();
    let mut seen = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(seen);
        }
        seen = true;
        let (line_part, used, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&line_part[..line_part.len().min(room)]);
        reader.consume(used);
        if done {
            return Ok(true);
        }
    }
}

/// Prints `COUNT\tID\tTEMPLATE` per group (and the overflow group when it
/// holds lines), by count descending, ties by id.
pub fn write_templates(miner: &Miner, out: &mut dyn Write) -> Result<(), PatternsError> {
    let mut rows: Vec<(u64, GroupId, String)> = miner
        .groups()
        .iter()
        .map(|g| (g.count(), g.id(), g.template()))
        .collect();
    let overflow = miner.stats().overflow_lines;
    if overflow > 0 {
        rows.push((overflow, GroupId::OVERFLOW, mask::WILDCARD.to_owned()));
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (count, id, template) in rows {
        writeln!(out, "{count}\t{id}\t{template}").map_err(PatternsError::Write)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn run(content: &str, assign: bool) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, content).unwrap();
        let mut out = Vec::new();
        run_patterns_cli(&path, assign, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    const LOG: &str = "Failed password for root from 10.0.0.7 port 5022 ssh2\r\n\
                       Connection closed by 10.0.0.9 [preauth]\n\
                       Failed password for root from 10.0.0.8 port 6022 ssh2\n";

    #[test]
    fn templates_are_printed_by_count() {
        let out = run(LOG, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: Vec<&str> = lines[0].split('\t').collect();
        assert_eq!(first[0], "2");
        assert_eq!(first[1].len(), 16);
        // `5022 ssh2`: adjacent variables fold into one.
        assert_eq!(first[2], "Failed password for root from <*> port <*>");
        assert!(lines[1].starts_with("1\t"));
        assert!(lines[1].ends_with("\tConnection closed by <*> [preauth]"));
    }

    #[test]
    fn assign_prints_one_id_per_line() {
        let out = run(LOG, true);
        let ids: Vec<&str> = out.lines().collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[0], ids[2]);
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn overflow_is_printed_as_its_own_row() {
        let mut miner = Miner::new(MinerConfig {
            max_groups: 1,
            ..MinerConfig::default()
        });
        for line in [
            "disk 1 failed",
            "fan 3 stopped",
            "disk 2 failed",
            "disk 3 failed",
        ] {
            miner.observe(line);
        }
        let mut out = Vec::new();
        write_templates(&miner, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert!(rows[0].starts_with("3\t") && rows[0].ends_with("\tdisk <*> failed"));
        assert_eq!(rows[1], "1\toverflow\t<*>");
    }

    #[test]
    fn lines_are_read_with_a_cap_and_without_newlines() {
        let input = b"short\r\n0123456789abcdef\n\nlast";
        let mut reader = std::io::BufReader::with_capacity(4, &input[..]);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while read_line_capped(&mut reader, &mut buf, 8).unwrap() {
            lines.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(lines, ["short\r", "01234567", "", "last"]);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let mut out = Vec::new();
        let err = run_patterns_cli(Path::new("/nonexistent/x.log"), false, &mut out)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/x.log"), "{err}");
    }
}
