//! The work behind `tocsinctl`, the operator's CLI: each command is a
//! function that writes promtool's output to the given writers and returns
//! the process exit code, so tests run it in-process and the binary stays a
//! thin argument parser.
//!
//! The commands that talk to a running collector ([`query`], [`logs`],
//! [`agents`], [`error_groups`]) go through one [`client::Client`]
//! (`--url`, `--token` or `TOCSIN_TOKEN`, `--ca-file`) and fail with a
//! [`client::CtlError`] that says what to do.
//!
//! Exit codes are promtool's: 0 success, 1 failure, 3 lint problems with
//! `--lint-fatal`.

pub mod agents;
pub mod client;
pub mod error_groups;
pub mod logs;
pub mod query;
pub mod rules;

use std::io::Write;

/// The exit code of a command.
pub type ExitCode = u8;

/// Everything went well.
pub const SUCCESS: ExitCode = 0;
/// A check or test failed, or an input was invalid.
pub const FAILURE: ExitCode = 1;
/// Only lint problems were found, and `--lint-fatal` was given.
pub const LINT_FAILURE: ExitCode = 3;

/// How the commands that talk to a collector print their answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// Readable lines or an aligned table.
    #[default]
    Table,
    /// The API's JSON answer, unchanged.
    Json,
}

/// The API's warnings, one `warning: …` line each.
fn print_warnings(warnings: &[String], err: &mut dyn Write) -> std::io::Result<()> {
    for w in warnings {
        writeln!(err, "warning: {w}")?;
    }
    Ok(())
}

/// Prints an answer of the API: its warnings to `err`, then to `out` the
/// JSON unchanged or `format(data)` as a table.
fn print_answer(
    answer: &client::Answer,
    output: Output,
    format: fn(&serde_json::Value) -> String,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, client::CtlError> {
    print_warnings(&answer.warnings, err)?;
    match output {
        Output::Json => writeln!(out, "{}", answer.raw.trim_end())?,
        Output::Table => out.write_all(format(&answer.data).as_bytes())?,
    }
    Ok(SUCCESS)
}

/// Rows as columns separated by two spaces, each as wide as its widest
/// cell (the last column unpadded).
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c].saturating_sub(cell.chars().count()) + 2;
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}
