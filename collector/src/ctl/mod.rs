//! The work behind `tocsinctl`, the operator's CLI: each command is a
//! function that writes promtool's output to the given writers and returns
//! the process exit code, so tests run it in-process and the binary stays a
//! thin argument parser.
//!
//! Exit codes are promtool's: 0 success, 1 failure, 3 lint problems with
//! `--lint-fatal`.

pub mod rules;

/// The exit code of a command.
pub type ExitCode = u8;

/// Everything went well.
pub const SUCCESS: ExitCode = 0;
/// A check or test failed, or an input was invalid.
pub const FAILURE: ExitCode = 1;
/// Only lint problems were found, and `--lint-fatal` was given.
pub const LINT_FAILURE: ExitCode = 3;
