//! Schema errors of every top-level section at once. serde stops at the
//! first error of what it reads; reading each section again alone finds the
//! first error of each.

use serde::de::DeserializeOwned;

use crate::tree::{Node, NodeKind};

/// The first schema error of each top-level section of `text` read as `T`,
/// with the section's key, in file order. Each section is read alone, the
/// file's other lines blanked so that positions stay those of the file, so
/// `T` must read a file that has only some of its sections. Empty when the
/// file is no block mapping (a syntax error, or flow style); keys on one
/// line are read together, under the first.
pub fn errors_by_section<T: DeserializeOwned>(text: &str) -> Vec<(String, serde_saphyr::Error)> {
    let Ok(Node {
        kind: NodeKind::Map(entries),
        ..
    }) = serde_saphyr::from_str::<Node>(text)
    else {
        return Vec::new();
    };
    let mut starts: Vec<(u64, &str)> = entries
        .iter()
        .map(|(key, _)| (key.referenced.line(), key.value.as_str()))
        .collect();
    starts.sort_unstable();
    starts.dedup_by_key(|(line, _)| *line);
    let lines: Vec<&str> = text.lines().collect();
    let mut errors = Vec::new();
    for (i, &(start, key)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(u64::MAX, |(line, _)| *line);
        let alone: String = lines
            .iter()
            .enumerate()
            .map(|(n, l)| {
                let n = n as u64 + 1;
                if n >= start && n < end { *l } else { "" }
            })
            .collect::<Vec<_>>()
            .join("\n");
        if let Err(e) = serde_saphyr::from_str::<T>(&alone) {
            errors.push((key.to_string(), e));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    #[allow(dead_code, reason = "only the errors of reading it are used")]
    struct Config {
        name: String,
        port: u16,
        inner: Inner,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    #[allow(dead_code, reason = "only the errors of reading it are used")]
    struct Inner {
        size: u64,
    }

    fn positions(text: &str) -> Vec<(String, u64, u64)> {
        errors_by_section::<Config>(text)
            .into_iter()
            .map(|(key, e)| {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                (key, line, column)
            })
            .collect()
    }

    #[test]
    fn every_section_reports_its_first_error_at_its_place() {
        let text = "# config\nname: x\nport: lots\ninner:\n  sise: 1\n  size: many\nextra: 1\n";
        assert_eq!(
            positions(text),
            [
                ("port".to_string(), 3, 7),
                ("inner".to_string(), 5, 3),
                ("extra".to_string(), 7, 1)
            ]
        );
    }

    #[test]
    fn sections_that_read_report_nothing() {
        assert!(positions("name: x\nport: 80\ninner: {size: 1}\n").is_empty());
    }

    #[test]
    fn a_file_that_is_no_mapping_has_no_sections() {
        assert!(positions("name: [\n").is_empty());
        assert!(positions("- a\n- b\n").is_empty());
    }
}
