//! The log tailer: follows the files named by the log inputs' globs and
//! turns their lines into records for the exporter, losing and repeating
//! nothing that is on disk across rotation (rename or copytruncate),
//! truncation, inode reuse and restarts.
//!
//! Invariants: a record's `(file_id, offset)` names the same bytes forever
//! (one id per file incarnation, persisted before any of its records leave);
//! a file's checkpoint moves only over records the exporter acknowledged (or
//! that were filtered out), in file order; every queue and buffer is
//! bounded, and when full the tailer stops reading (the data waits on disk)
//! rather than dropping. Time comes from an injected `Clock`, so flush
//! timeouts and rotation grace periods are testable without sleeping.

mod checkpoint;
mod config;
mod discovery;
mod identity;
mod reader;
mod redact;
mod severity;
mod tailer;

#[cfg(test)]
mod tests;

pub use checkpoint::{CheckpointError, FORMAT_VERSION as CHECKPOINT_FORMAT_VERSION};
pub use config::{
    ConfigProblem, LogConfigError, LogInput, LogInputConfig, MinSeverity, MultilineConfig,
    ReadFrom, RedactionConfig, parse_duration, validate_inputs,
};
pub use redact::Redactor;
pub use severity::{Severity, detect as detect_severity, severity_word};
pub use tailer::{
    Batch, Clock, Counters, LogRecord, ManualClock, SystemClock, Tailer, TailerError, TailerOptions,
};
