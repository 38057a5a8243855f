//! Reading the configured rule files: glob expansion, loading and
//! validating every matched file with the rule engine's loader, and the
//! checks that span files (a log metric declared twice, or named like a
//! recording rule of another file, would make two writers of one series).
//!
//! Invariant: a [`LoadedRules`] is complete and valid, or the load failed
//! with every problem found (each `file:line:col: message`); there is no
//! partial result, so a failed reload can keep the previous rule set whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tocsin_rules::file::{LoadOptions, Pos, RuleFile, RuleFileError, RuleKind, load_str};
use xxhash_rust::xxh64::Xxh64;

/// Most files one load reads; more is a configuration mistake (a glob over
/// the wrong directory), refused rather than held.
pub const MAX_RULE_FILES: usize = 10_000;
/// Largest rule file read.
pub const MAX_RULE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Every rule file the patterns matched, loaded and validated.
#[derive(Debug, Clone, Default)]
pub struct LoadedRules {
    /// In pattern order, then path order within a pattern; each path once.
    pub files: Vec<RuleFile>,
    /// A digest of the matched paths and their contents: equal digests
    /// mean nothing on disk changed.
    pub fingerprint: u64,
}

/// Why a load failed: every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.errors))]
pub struct LoadError {
    pub errors: Vec<RuleFileError>,
}

fn render(errors: &[RuleFileError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn whole_file_error(file: &Path, message: String) -> RuleFileError {
    RuleFileError {
        file: file.display().to_string(),
        pos: Pos::default(),
        message,
    }
}

/// The paths the patterns match, each once, in pattern order and sorted
/// within a pattern.
pub fn expand(patterns: &[String]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut errors = Vec::new();
    for p in patterns {
        let paths = match glob::glob(p) {
            Ok(paths) => paths,
            Err(e) => {
                errors.push(whole_file_error(
                    Path::new(p),
                    format!("invalid glob pattern: {e}"),
                ));
                continue;
            }
        };
        let mut matched = Vec::new();
        for entry in paths {
            match entry {
                Ok(path) if path.is_file() => matched.push(path),
                Ok(_) => {}
                Err(e) => errors.push(whole_file_error(
                    e.path(),
                    format!("cannot read: {}", e.error()),
                )),
            }
        }
        matched.sort();
        for path in matched {
            if !out.contains(&path) {
                out.push(path);
            }
        }
        if out.len() > MAX_RULE_FILES {
            errors.push(whole_file_error(
                Path::new(p),
                format!("the rule_files patterns match more than {MAX_RULE_FILES} files"),
            ));
            break;
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(LoadError { errors })
    }
}

/// Reads the files matched by `patterns`, or reports every problem.
pub fn load(patterns: &[String]) -> Result<LoadedRules, LoadError> {
    let paths = expand(patterns)?;
    let mut errors = Vec::new();
    let mut files = Vec::with_capacity(paths.len());
    let mut digest = Xxh64::new(0);
    for path in &paths {
        let text = match read_bounded(path) {
            Ok(t) => t,
            Err(message) => {
                errors.push(whole_file_error(path, message));
                continue;
            }
        };
        digest.update(path.as_os_str().as_encoded_bytes());
        digest.update(&[0]);
        digest.update(&(text.len() as u64).to_le_bytes());
        digest.update(text.as_bytes());
        let source = path.display().to_string();
        match load_str(&source, &text, LoadOptions::default()) {
            Ok(f) => files.push(f),
            Err(e) => errors.extend(e.errors),
        }
    }
    errors.extend(cross_file_problems(&files));
    if !errors.is_empty() {
        return Err(LoadError { errors });
    }
    Ok(LoadedRules {
        files,
        fingerprint: digest.digest(),
    })
}

/// The digest [`load`] would compute, without parsing: cheap enough to
/// decide whether a file-change notification changed anything.
pub fn fingerprint(patterns: &[String]) -> Result<u64, LoadError> {
    let mut digest = Xxh64::new(0);
    for path in expand(patterns)? {
        let text = read_bounded(&path).map_err(|m| LoadError {
            errors: vec![whole_file_error(&path, m)],
        })?;
        digest.update(path.as_os_str().as_encoded_bytes());
        digest.update(&[0]);
        digest.update(&(text.len() as u64).to_le_bytes());
        digest.update(text.as_bytes());
    }
    Ok(digest.digest())
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read rule file: {e}"))?;
    if meta.len() > MAX_RULE_FILE_BYTES {
        return Err(format!(
            "rule file is {} bytes, more than the {MAX_RULE_FILE_BYTES} allowed",
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read rule file: {e}"))
}

/// Log metrics declared in two files, or named like another file's
/// recording rule.
fn cross_file_problems(files: &[RuleFile]) -> Vec<RuleFileError> {
    let mut errors = Vec::new();
    let mut log_metrics: BTreeMap<&str, (&str, Pos)> = BTreeMap::new();
    for f in files {
        for m in &f.log_metrics {
            match log_metrics.get(m.name.as_str()) {
                Some((other, pos)) if *other != f.source => errors.push(RuleFileError {
                    file: f.source.clone(),
                    pos: m.pos,
                    message: format!("log metric {:?} is also declared in {other}:{pos}", m.name),
                }),
                Some(_) => {}
                None => {
                    log_metrics.insert(&m.name, (&f.source, m.pos));
                }
            }
        }
    }
    for f in files {
        for g in &f.groups {
            for r in &g.rules {
                if let RuleKind::Record(name) = &r.kind
                    && let Some((other, pos)) = log_metrics.get(name.as_str())
                    && *other != f.source
                {
                    errors.push(RuleFileError {
                        file: f.source.clone(),
                        pos: r.pos,
                        message: format!(
                            "recording rule {name:?} writes the series of the log metric declared in {other}:{pos}"
                        ),
                    });
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const GOOD: &str = "groups:\n- name: g\n  rules:\n  - record: r\n    expr: vector(1)\n";

    #[test]
    fn globs_expand_sorted_once_and_load() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.yaml", GOOD);
        write(dir.path(), "a.yaml", GOOD);
        write(dir.path(), "c.txt", "not rules");
        let base = dir.path().display().to_string();
        let pats = vec![format!("{base}/*.yaml"), format!("{base}/a.yaml")];
        let loaded = load(&pats).unwrap();
        let names: Vec<&str> = loaded.files.iter().map(|f| f.source.as_str()).collect();
        assert_eq!(
            names,
            vec![format!("{base}/a.yaml"), format!("{base}/b.yaml")]
        );
        assert_eq!(fingerprint(&pats).unwrap(), loaded.fingerprint);
        write(
            dir.path(),
            "b.yaml",
            &GOOD.replace("vector(1)", "vector(2)"),
        );
        assert_ne!(fingerprint(&pats).unwrap(), loaded.fingerprint);
    }

    #[test]
    fn every_error_of_every_file_is_reported_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.yaml",
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum(\n",
        );
        write(
            dir.path(),
            "b.yaml",
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5x\n",
        );
        let base = dir.path().display().to_string();
        let err = load(&[format!("{base}/*.yaml")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("{base}/a.yaml:5:")), "{text}");
        assert!(text.contains(&format!("{base}/b.yaml:6:")), "{text}");
    }

    #[test]
    fn a_log_metric_in_two_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lm = "log_metrics:\n- name: x_total\n  selector: '{service_name=\"a\"}'\n";
        write(dir.path(), "a.yaml", lm);
        write(dir.path(), "b.yaml", lm);
        write(
            dir.path(),
            "c.yaml",
            "groups:\n- name: g\n  rules:\n  - record: x_total\n    expr: vector(1)\n",
        );
        let base = dir.path().display().to_string();
        let err = load(&[format!("{base}/*.yaml")]).unwrap_err();
        assert_eq!(err.errors.len(), 2, "{err}");
        assert!(err.errors[0].message.contains("also declared in"));
        assert_eq!(err.errors[0].file, format!("{base}/b.yaml"));
        assert_eq!(err.errors[1].file, format!("{base}/c.yaml"));
        assert_eq!(err.errors[1].pos.line, 4);
    }

    #[test]
    fn no_match_is_an_empty_rule_set() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(&[format!("{}/*.yaml", dir.path().display())]).unwrap();
        assert!(loaded.files.is_empty());
    }
}
