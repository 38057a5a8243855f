//! `tocsinctl rules check` and `tocsinctl rules test`: promtool's
//! `check rules` and `test rules`, with the same output and exit codes.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use tocsin_rules::file::{LoadOptions, load_file, load_str};
use tocsin_rules::unittest::{self, RunOptions, UnitTestError};
use tocsin_rules::validate::lint_duplicates;

use super::{ExitCode, FAILURE, LINT_FAILURE, SUCCESS};

/// How rules read from standard input are named in messages.
const STDIN_NAME: &str = "standard input";

/// Which lint checks `rules check` runs (`--lint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lint {
    /// Rules that write the same series (promtool's default).
    #[default]
    DuplicateRules,
    None,
}

/// Options of `rules check`.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub lint: Lint,
    /// Lint problems make the exit code 3 (otherwise they are reported
    /// and the exit code stays 0).
    pub lint_fatal: bool,
    pub ignore_unknown_fields: bool,
}

/// `rules check FILE…`: validates each rule file, printing
/// `Checking FILE` then `  SUCCESS: N rules found` or `  FAILED:` and every
/// problem as `file:line:column: message`. With no files, checks what
/// `stdin` holds (`Checking standard input`), as promtool does.
pub fn check(
    files: &[PathBuf],
    opts: &CheckOptions,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<ExitCode> {
    let mut failed = false;
    let mut has_errors = false;
    let load_opts = LoadOptions {
        ignore_unknown_fields: opts.ignore_unknown_fields,
    };
    let mut inputs: Vec<(String, Option<&PathBuf>)> = files
        .iter()
        .map(|f| (f.display().to_string(), Some(f)))
        .collect();
    if inputs.is_empty() {
        inputs.push((STDIN_NAME.to_string(), None));
    }
    for (name, path) in inputs {
        writeln!(out, "Checking {name}")?;
        let loaded = match path {
            Some(f) => load_file(f, load_opts),
            None => {
                let mut text = String::new();
                stdin.read_to_string(&mut text)?;
                load_str(&name, &text, load_opts)
            }
        };
        match loaded {
            Err(errs) => {
                failed = true;
                has_errors = true;
                writeln!(err, "  FAILED:")?;
                for e in &errs.errors {
                    writeln!(err, "{e}")?;
                }
            }
            Ok(file) => {
                let dups = if opts.lint == Lint::DuplicateRules {
                    lint_duplicates(&file)
                } else {
                    Vec::new()
                };
                if dups.is_empty() {
                    let n: usize = file.groups.iter().map(|g| g.rules.len()).sum();
                    writeln!(out, "  SUCCESS: {n} rules found")?;
                } else {
                    failed = true;
                    writeln!(err, "  FAILED:")?;
                    let mut msg = format!("lint error {} duplicate rule(s) found.\n", dups.len());
                    for d in &dups {
                        msg.push_str(&format!("Metric: {}\nLabel(s):\n", d.name));
                        for (k, v) in &d.labels {
                            msg.push_str(&format!("\t{k}: {v}\n"));
                        }
                    }
                    msg.push_str("Might cause inconsistency while recording expressions");
                    writeln!(err, "{msg}")?;
                }
            }
        }
        writeln!(out)?;
    }
    Ok(if failed && has_errors {
        FAILURE
    } else if failed && opts.lint_fatal {
        LINT_FAILURE
    } else {
        SUCCESS
    })
}

/// `rules test FILE…`: runs promtool-format rule unit tests. With
/// `junit`, also writes JUnit XML results there (a failure to write them is
/// reported and does not change the exit code, as in promtool).
pub fn test(
    files: &[PathBuf],
    opts: &RunOptions,
    junit: Option<&mut dyn Write>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, UnitTestError> {
    let outcomes = unittest::run_files(files, opts, out, err)?;
    if let Some(w) = junit {
        let now = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        if let Err(e) = unittest::junit::write_xml(&outcomes, &now, w).and_then(|()| w.flush()) {
            writeln!(err, "failed to write JUnit XML: {e}")?;
        }
    }
    Ok(if outcomes.iter().all(|o| o.passed()) {
        SUCCESS
    } else {
        FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn check_counts_rules_and_reports_problems() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = write(
            &dir,
            "good.yml",
            "groups:\n  - name: g\n    rules:\n      - record: a:b\n        expr: up\n      - alert: X\n        expr: up == 0\n",
        );
        let bad = write(
            &dir,
            "bad.yml",
            "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: 'test +'\n",
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check(
            std::slice::from_ref(&good),
            &CheckOptions::default(),
            &mut io::empty(),
            &mut out,
            &mut err,
        )
        .expect("io");
        assert_eq!(code, SUCCESS);
        let out_s = String::from_utf8_lossy(&out);
        assert!(out_s.contains("  SUCCESS: 2 rules found"), "{out_s}");

        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check(
            &[good, bad],
            &CheckOptions::default(),
            &mut io::empty(),
            &mut out,
            &mut err,
        )
        .expect("io");
        assert_eq!(code, FAILURE);
        let err_s = String::from_utf8_lossy(&err);
        assert!(err_s.contains("  FAILED:"), "{err_s}");
        assert!(err_s.contains("bad.yml:5:"), "{err_s}");
    }

    #[test]
    fn duplicate_rules_are_lint_problems() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = write(
            &dir,
            "dup.yml",
            "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n      - record: a\n        expr: up\n",
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check(
            std::slice::from_ref(&f),
            &CheckOptions::default(),
            &mut io::empty(),
            &mut out,
            &mut err,
        )
        .expect("io");
        assert_eq!(code, SUCCESS, "lint problems are not fatal by default");
        assert!(String::from_utf8_lossy(&err).contains("lint error 1 duplicate rule(s) found."));
        let opts = CheckOptions {
            lint_fatal: true,
            ..CheckOptions::default()
        };
        let code = check(
            std::slice::from_ref(&f),
            &opts,
            &mut io::empty(),
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .expect("io");
        assert_eq!(code, LINT_FAILURE);
        let opts = CheckOptions {
            lint: Lint::None,
            lint_fatal: true,
            ..CheckOptions::default()
        };
        let code = check(
            &[f],
            &opts,
            &mut io::empty(),
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .expect("io");
        assert_eq!(code, SUCCESS);
    }

    #[test]
    fn no_files_means_standard_input() {
        let text = "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check(
            &[],
            &CheckOptions::default(),
            &mut text.as_bytes(),
            &mut out,
            &mut err,
        )
        .expect("io");
        assert_eq!(code, SUCCESS);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "Checking standard input\n  SUCCESS: 1 rules found\n\n"
        );
    }
}
