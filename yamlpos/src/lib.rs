//! Positions in Tocsin's YAML files (the agent's and the collector's
//! configuration, rule files): what diagnostics of the form
//! `file:line:column: field: message` are built from.
//!
//! - [`Node`]: the file as a tree of mappings, sequences and kinds of
//!   scalar, each with the position of its value, and every mapping key with
//!   its own. How keys become text is the tree's type parameter
//!   ([`KeyText`]).
//! - [`segments`], [`Node::locate_value`] and [`Node::locate_key`]: a field
//!   path such as `logs[0].include[1]` to a position, or to that of the
//!   deepest part of it the file has; [`Node::path_at`] the other way.
//! - [`errors_by_section`]: the first schema error of every top-level
//!   section, where serde alone stops at the first of the file.
//! - [`message`] and [`message_unescaped`]: a serde-saphyr error's message
//!   without its position, which diagnostics print in front instead.
//!
//! Invariants: reading a [`Node`] fails only where the YAML itself does
//! (any value of any shape is a node); positions are serde-saphyr's
//! (1-based line and column); nothing here knows a file's schema.

mod path;
mod sections;
mod tree;

pub use path::{Segment, segments};
pub use sections::errors_by_section;
pub use tree::{AnyScalarKey, KeyText, Node, NodeKind};

/// `YAML: ` and serde-saphyr's message for `e`, without its location suffix
/// or source snippet, escaped as Rust's debug format escapes a string
/// (without the quotes) so that the diagnostic stays on one line.
pub fn message(e: &serde_saphyr::Error) -> String {
    format!("YAML: {}", formatted(e).escape_debug())
}

/// [`message`] without the escaping: newlines and quotes as they are.
pub fn message_unescaped(e: &serde_saphyr::Error) -> String {
    format!("YAML: {}", formatted(e))
}

fn formatted(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::MessageFormatter;
    serde_saphyr::DefaultMessageFormatter
        .format_message(e.without_snippet())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value that is never valid, with a message of two lines and quotes.
    #[derive(Debug)]
    struct Refused;

    impl<'de> serde::Deserialize<'de> for Refused {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let _ = <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d)?;
            Err(serde::de::Error::custom("not \"this\"\nnor that"))
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code, reason = "only the error of reading it is used")]
    struct Config {
        a: Refused,
    }

    fn error(text: &str) -> serde_saphyr::Error {
        match serde_saphyr::from_str::<Config>(text) {
            Ok(r) => panic!("{text:?} read as {r:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn messages_leave_out_the_position_and_the_snippet() {
        let e = error("a: 1\n");
        assert_eq!(e.location().map(|l| (l.line(), l.column())), Some((1, 4)));
        assert_eq!(message_unescaped(&e), "YAML: not \"this\"\nnor that");
    }

    #[test]
    fn escaped_messages_stay_on_one_line() {
        let e = error("a: 1\n");
        assert_eq!(message(&e), r#"YAML: not \"this\"\nnor that"#);
    }
}
