//! JUnit XML results of a unit-test run (promtool's `--junit`), in the
//! layout of Prometheus' `util/junitxml`: one `<testsuite>` per test file,
//! one `<testcase>` per test group run, a `<failure>` per failed check, and
//! an `<error>` on a file that could not be run at all.
//!
//! The timestamp is an argument: this module does not read the clock.

use std::io::{self, Write};

use super::FileOutcome;

/// Writes the JUnit XML document for `outcomes`; `timestamp` is the
/// suites' start time as promtool formats it (`2006-01-02T15:04:05`).
pub fn write_xml(outcomes: &[FileOutcome], timestamp: &str, w: &mut dyn Write) -> io::Result<()> {
    let mut s = String::from("<testsuites>");
    for o in outcomes {
        let mut cases: Vec<(String, Vec<String>, Option<String>)> = o
            .cases
            .iter()
            .map(|c| (c.name.clone(), c.failures.clone(), None))
            .collect();
        if let Some(e) = &o.aborted {
            // promtool records the error on the last case, creating an
            // "unknown" one when none ran.
            if cases.is_empty() {
                cases.push(("unknown".into(), Vec::new(), None));
            }
            if let Some(last) = cases.last_mut() {
                last.2 = Some(e.clone());
            }
        }
        let failures: usize = cases.iter().map(|c| c.1.len()).sum();
        let errors = usize::from(o.aborted.is_some());
        s.push_str(&format!(
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" timestamp=\"{}\">",
            escape(&o.file),
            cases.len(),
            if o.started { escape(timestamp) } else { String::new() },
        ));
        for (name, fails, error) in &cases {
            s.push_str(&format!("<testcase name=\"{}\">", escape(name)));
            for f in fails {
                s.push_str(&format!("<failure>{}</failure>", escape(f)));
            }
            if let Some(e) = error {
                s.push_str(&format!("<error>{}</error>", escape(e)));
            }
            s.push_str("</testcase>");
        }
        s.push_str("</testsuite>");
    }
    s.push_str("</testsuites>");
    w.write_all(s.as_bytes())
}

/// Go's `xml.EscapeText`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::CaseOutcome;
    use super::*;

    #[test]
    fn suites_cases_failures_and_errors() {
        let outcomes = vec![
            FileOutcome {
                file: "a.yml".into(),
                started: true,
                failures: vec!["    expr: \"x\" <bad>".into()],
                cases: vec![
                    CaseOutcome {
                        name: "ok".into(),
                        failures: vec![],
                    },
                    CaseOutcome {
                        name: "unnamed#1".into(),
                        failures: vec!["    expr: \"x\" <bad>".into()],
                    },
                ],
                ..FileOutcome::default()
            },
            FileOutcome {
                file: "b.yml".into(),
                failures: vec!["open b.yml: no such file or directory".into()],
                aborted: Some("open b.yml: no such file or directory".into()),
                ..FileOutcome::default()
            },
        ];
        let mut out = Vec::new();
        write_xml(&outcomes, "2026-01-01T00:00:00", &mut out).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&out),
            concat!(
                "<testsuites>",
                "<testsuite name=\"a.yml\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\" timestamp=\"2026-01-01T00:00:00\">",
                "<testcase name=\"ok\"></testcase>",
                "<testcase name=\"unnamed#1\"><failure>    expr: &#34;x&#34; &lt;bad&gt;</failure></testcase>",
                "</testsuite>",
                "<testsuite name=\"b.yml\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" timestamp=\"\">",
                "<testcase name=\"unknown\"><error>open b.yml: no such file or directory</error></testcase>",
                "</testsuite>",
                "</testsuites>"
            )
        );
    }
}
