//! Rule-file loading and validation against Prometheus' own rule files
//! (`../shared/conformance/rulefmt/` and the rule files of
//! `../shared/conformance/promtool/`), plus Tocsin's diagnostics as golden
//! files (`tests/golden/rulefmt/*.yaml` with the expected `*.errors`; run
//! with `UPDATE_GOLDEN=1` to rewrite them, then review the diff).
//!
//! The conformance tests skip, saying so, when the conformance folder is
//! absent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use tocsin_rules::file::{
    LoadOptions, Pos, RuleFile, RuleFileErrors, RuleKind, load_file, load_str,
};
use tocsin_rules::validate::lint_duplicates;

fn conformance(sub: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance")
        .join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} is absent", dir.display());
        None
    }
}

fn strict() -> LoadOptions {
    LoadOptions::default()
}

fn load_ok(path: &Path, opts: LoadOptions) -> RuleFile {
    match load_file(path, opts) {
        Ok(f) => f,
        Err(e) => panic!("{} should load, got:\n{e}", path.display()),
    }
}

fn load_err(path: &Path, opts: LoadOptions) -> RuleFileErrors {
    match load_file(path, opts) {
        Ok(_) => panic!("{} should be rejected", path.display()),
        Err(e) => e,
    }
}

fn pos(line: usize, column: usize) -> Pos {
    Pos { line, column }
}

mod rulefmt_conformance {
    use super::*;

    #[test]
    fn good_files_load() {
        let Some(dir) = conformance("rulefmt") else {
            return;
        };
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".good.yaml") || n == "test.yaml" || n == "test_aliases.yaml")
            .collect();
        names.sort();
        assert!(names.len() >= 5, "expected the good files, found {names:?}");
        for name in names {
            load_ok(&dir.join(name), strict());
        }
    }

    #[test]
    fn test_yaml_reads_every_field() {
        let Some(dir) = conformance("rulefmt") else {
            return;
        };
        let f = load_ok(&dir.join("test.yaml"), strict());
        assert_eq!(f.groups.len(), 2);
        let g = &f.groups[0];
        assert_eq!(g.name, "my-group-name");
        assert_eq!(g.interval, Some(std::time::Duration::from_secs(30)));
        assert_eq!(g.pos, pos(2, 5));
        assert_eq!(g.rules.len(), 3);
        let r = &g.rules[0];
        assert_eq!(r.kind, RuleKind::Alert("HighErrors".into()));
        assert_eq!(r.for_, std::time::Duration::from_secs(300));
        assert_eq!(
            r.labels,
            vec![("severity".to_string(), "critical".to_string())]
        );
        assert_eq!(r.pos, pos(5, 9));
        assert_eq!(g.rules[1].kind, RuleKind::Record("new_metric".into()));
        assert_eq!(
            g.rules[1].labels,
            vec![("abc".into(), "edf".into()), ("uvw".into(), "xyz".into())]
        );
    }

    /// Prometheus' TestParseFileSuccessWithAliases: anchors, aliases and a
    /// merge key whose own `alert:` overrides the merged one.
    #[test]
    fn aliases_and_merge_keys_resolve() {
        let Some(dir) = conformance("rulefmt") else {
            return;
        };
        let f = load_ok(&dir.join("test_aliases.yaml"), strict());
        let expr = "sum without(instance) (rate(errors_total[5m]))\n/\nsum without(instance) (rate(requests_total[5m]))\n";
        assert_eq!(f.groups.len(), 2);
        for g in &f.groups {
            assert_eq!(g.rules.len(), 4);
            assert_eq!(g.rules[0].kind, RuleKind::Alert("HighAlert".into()));
            assert_eq!(
                g.rules[0].labels,
                vec![("severity".into(), "critical".into())]
            );
            assert_eq!(
                g.rules[0].annotations,
                vec![(
                    "description".into(),
                    "stuff's happening with {{ $.labels.service }}".into()
                )]
            );
            assert_eq!(g.rules[1].kind, RuleKind::Record("new_metric".into()));
            assert_eq!(g.rules[2].kind, RuleKind::Alert("HighAlert".into()));
            assert_eq!(g.rules[3].kind, RuleKind::Alert("HighAlert2".into()));
            assert_eq!(
                g.rules[3].labels,
                vec![("severity".into(), "critical".into())]
            );
            for r in &g.rules {
                assert_eq!(r.expr_text, expr);
            }
        }
    }

    /// Each bad file, the position the first problem must carry (read off
    /// the file), and a part of Prometheus' message for it.
    const BAD: &[(&str, (usize, usize), &str)] = &[
        (
            "bad_expr.bad.yaml",
            (5, 15),
            "could not parse expression: parse error",
        ),
        ("bad_field.bad.yaml", (8, 9), "field annotation not found"),
        (
            "duplicate_grp.bad.yaml",
            (3, 5),
            "groupname: \"yolo\" is repeated in the same file",
        ),
        (
            "invalid_label_name.bad.yaml",
            (7, 11),
            "invalid label name: __name__",
        ),
        (
            "invalid_record_name.bad.yaml",
            (4, 17),
            "braces present in the recording rule name; should it be in expr?: strawberry{flavor=\"sweet\"}",
        ),
        (
            "no_rec_alert.bad.yaml",
            (4, 9),
            "one of 'record' or 'alert' must be set",
        ),
        (
            "noexpr.bad.yaml",
            (4, 9),
            "field 'expr' must be set in rule",
        ),
        (
            "record_and_alert.bad.yaml",
            (4, 17),
            "only one of 'record' and 'alert' must be set",
        ),
        (
            "record_and_for.bad.yaml",
            (6, 14),
            "invalid field 'for' in recording rule",
        ),
        (
            "record_and_keep_firing_for.bad.yaml",
            (6, 26),
            "invalid field 'keep_firing_for' in recording rule",
        ),
    ];

    #[test]
    fn bad_files_are_rejected_with_position() {
        let Some(dir) = conformance("rulefmt") else {
            return;
        };
        for (name, (line, column), needle) in BAD {
            let path = dir.join(name);
            let errs = load_err(&path, strict());
            let first = &errs.errors[0];
            assert_eq!(first.pos, pos(*line, *column), "{name}: {errs}");
            assert!(first.message.contains(needle), "{name}: {first}");
            let shown = errs.to_string();
            let prefix = format!("{}:{line}:{column}: ", path.display());
            assert!(shown.starts_with(&prefix), "{name}: {shown}");
        }
    }

    /// A new bad file in the conformance data must get an entry above.
    #[test]
    fn every_bad_file_is_covered() {
        let Some(dir) = conformance("rulefmt") else {
            return;
        };
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".bad.yaml") {
                assert!(
                    BAD.iter().any(|(n, _, _)| *n == name),
                    "{name} has no expectation"
                );
            }
        }
    }

    #[test]
    fn unknown_fields_can_be_ignored() {
        let Some(dir) = conformance("rulefmt") else {
            return;
        };
        let f = load_ok(
            &dir.join("bad_field.bad.yaml"),
            LoadOptions {
                ignore_unknown_fields: true,
            },
        );
        assert_eq!(f.groups[0].rules[0].annotations, vec![]);
    }
}

mod promtool_rule_files {
    use super::*;

    /// The rule files promtool's tests load successfully.
    const GOOD: &[&str] = &[
        "rules.yml",
        "rules_large.yml",
        "rules_duplicates.yml",
        "at-modifier.yml",
        "negative-offset.yml",
        "bad-rules-error.yml",
        "prometheus-rules.lint.yml",
    ];

    #[test]
    fn good_files_load() {
        let Some(dir) = conformance("promtool") else {
            return;
        };
        for name in GOOD {
            load_ok(&dir.join(name), strict());
        }
    }

    /// A file well past serde-saphyr's default node budget (250k) loads.
    #[test]
    fn fleet_sized_file_loads() {
        let mut text = String::from("groups:\n  - name: big\n    rules:\n");
        for i in 0..55_000 {
            text.push_str(&format!("      - {{record: r{i}, expr: '1'}}\n"));
        }
        let f = load_str("big.yaml", &text, strict()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.groups[0].rules.len(), 55_000);
    }

    #[test]
    fn rules_yml_content() {
        let Some(dir) = conformance("promtool") else {
            return;
        };
        let f = load_ok(&dir.join("rules.yml"), strict());
        let names: Vec<&str> = f
            .groups
            .iter()
            .flat_map(|g| &g.rules)
            .map(|r| r.name())
            .collect();
        assert_eq!(
            names,
            [
                "InstanceDown",
                "AlwaysFiring",
                "job:test:count_over_time1m",
                "fixed_data",
                "suquery_interval_test"
            ]
        );
    }

    #[test]
    fn large_file_loads_every_rule() {
        let Some(dir) = conformance("promtool") else {
            return;
        };
        let f = load_ok(&dir.join("rules_large.yml"), strict());
        let rules: usize = f.groups.iter().map(|g| g.rules.len()).sum();
        let expected = std::fs::read_to_string(dir.join("rules_large.yml"))
            .map(|t| t.matches("- record:").count() + t.matches("- alert:").count())
            .unwrap_or(0);
        assert!(expected > 1000, "rules_large.yml has {expected} rules");
        assert_eq!(rules, expected);
    }

    #[test]
    fn syntax_error_in_expression_is_rejected() {
        let Some(dir) = conformance("promtool") else {
            return;
        };
        let errs = load_err(&dir.join("bad-rules-syntax.yml"), strict());
        assert_eq!(errs.errors.len(), 1, "{errs}");
        assert_eq!(errs.errors[0].pos, pos(7, 15), "{errs}");
        assert!(
            errs.errors[0]
                .message
                .contains("group \"bad-syntax\", rule 1, \"x\""),
            "{errs}"
        );
    }

    /// `{{ $label.foo }}` names an undefined variable: Prometheus refuses
    /// the template when it loads the file.
    #[test]
    fn bad_template_is_rejected() {
        let Some(dir) = conformance("promtool") else {
            return;
        };
        let errs = load_err(&dir.join("rules-bad.yml"), strict());
        assert_eq!(errs.errors.len(), 1, "{errs}");
        // Column 33 is the `$label` inside the quoted annotation.
        assert_eq!(errs.errors[0].pos, pos(12, 33), "{errs}");
        assert!(
            errs.errors[0].message.contains("annotation \"summary\""),
            "{errs}"
        );
        assert!(
            errs.errors[0].message.contains("__alert_InstanceDown"),
            "{errs}"
        );
    }

    #[test]
    fn extra_fields_need_the_ignore_option() {
        let Some(dir) = conformance("promtool") else {
            return;
        };
        let path = dir.join("rules_extrafields.yml");
        let errs = load_err(&path, strict());
        let found: Vec<(Pos, bool)> = errs
            .errors
            .iter()
            .map(|e| (e.pos, e.message.contains("not found in a rule group")))
            .collect();
        // Both unknown keys at once, not just the first.
        assert_eq!(found, [(pos(7, 5), true), (pos(21, 5), true)], "{errs}");
        let f = load_ok(
            &path,
            LoadOptions {
                ignore_unknown_fields: true,
            },
        );
        assert_eq!(f.groups.len(), 2);
    }

    #[test]
    fn lint_finds_promtools_duplicates() {
        let Some(dir) = conformance("promtool") else {
            return;
        };
        let f = load_ok(&dir.join("rules_duplicates.yml"), strict());
        let d = lint_duplicates(&f);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].name, "job:test:count_over_time1m");
        assert_eq!(d[0].positions, [pos(6, 9), pos(18, 9), pos(23, 9)]);

        let f = load_ok(&dir.join("prometheus-rules.lint.yml"), strict());
        let d = lint_duplicates(&f);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].name, "HighRequestLatency");
        assert_eq!(d[0].labels, [("severity".to_string(), "page".to_string())]);

        let f = load_ok(&dir.join("rules.yml"), strict());
        assert_eq!(lint_duplicates(&f), []);
    }
}

mod diagnostics {
    use super::*;

    fn golden_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/rulefmt")
    }

    /// Every `*.yaml` in the golden folder is rejected with exactly the
    /// messages in the matching `*.errors`.
    #[test]
    fn golden_diagnostics() {
        let dir = golden_dir();
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no golden inputs in {}", dir.display());
        let update = std::env::var_os("UPDATE_GOLDEN").is_some();
        for input in inputs {
            let name = input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&input).unwrap_or_default();
            let got = match load_str(&name, &text, strict()) {
                Ok(_) => String::from("(loaded without errors)\n"),
                Err(e) => format!("{e}\n"),
            };
            let expected_path = input.with_extension("errors");
            if update {
                std::fs::write(&expected_path, &got).unwrap_or_else(|e| panic!("{e}"));
                continue;
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            assert_eq!(
                got,
                expected,
                "{name} (UPDATE_GOLDEN=1 rewrites {})",
                expected_path.display()
            );
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "\
groups:
  - name: a
    interval: 5x
    rules:
      - alert: A
        expr: up ==
        for: 1m1h
      - record: b{c=\"d\"}
        expr: sum(up)
        annotations:
          x: y
  - name: a
    rules:
      - expr: up
";
        let errs = match load_str("multi.yaml", text, strict()) {
            Ok(_) => panic!("should be rejected"),
            Err(e) => e,
        };
        let positions: Vec<Pos> = errs.errors.iter().map(|e| e.pos).collect();
        assert_eq!(
            positions,
            [
                pos(3, 15),
                pos(6, 15),
                pos(7, 14),
                pos(8, 17),
                pos(11, 11),
                pos(12, 5),
                pos(14, 9),
            ],
            "{errs}"
        );
        assert_eq!(errs.to_string().lines().count(), errs.errors.len());
    }

    #[test]
    fn yaml_syntax_error_has_position() {
        let errs = match load_str("s.yaml", "groups:\n  - name: a\n    rules: [\n", strict()) {
            Ok(_) => panic!("should be rejected"),
            Err(e) => e,
        };
        assert_eq!(errs.errors.len(), 1, "{errs}");
        assert!(errs.errors[0].pos.line >= 3, "{errs}");
        assert!(errs.errors[0].message.starts_with("YAML: "), "{errs}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let cases = [
            (
                "groups:\n  - name: a\n    limit: lots\n",
                pos(3, 12),
                "field limit in a rule group must be a whole number",
            ),
            (
                "groups: {name: a}\n",
                pos(1, 9),
                "field groups in the top level of a rule file must be a list of rule groups",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: [up]\n",
                pos(5, 15),
                "field expr in a rule must be a string",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        labels: {x: [1]}\n",
                pos(6, 21),
                "the value of x in labels must be a string",
            ),
            (
                "groups:\n  - just a string\n",
                pos(2, 5),
                "each entry of groups must be a mapping",
            ),
            ("- groups\n", pos(1, 1), "a rule file must be a mapping"),
        ];
        for (text, at, needle) in cases {
            let errs = match load_str("t.yaml", text, strict()) {
                Ok(_) => panic!("{text:?} should be rejected"),
                Err(e) => e,
            };
            assert_eq!(errs.errors.len(), 1, "{errs}");
            assert_eq!(errs.errors[0].pos, at, "{errs}");
            assert!(errs.errors[0].message.contains(needle), "{errs}");
        }
    }

    /// Values of the wrong shape are all reported at once, with unknown keys.
    #[test]
    fn every_wrong_shape_at_once() {
        let text = "\
groups:
  - name: a
    limit: 1.5
    labels: [x]
    rules:
      - alert: A
        expr: {up: 1}
        annotations: {summary: [a, b]}
        colour: red
      - just text
  - name: b
    rules: none
log_metrics: {name: x}
";
        let errs = match load_str("s.yaml", text, strict()) {
            Ok(_) => panic!("should be rejected"),
            Err(e) => e,
        };
        let got: Vec<(Pos, &str)> = errs
            .errors
            .iter()
            .map(|e| (e.pos, e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    pos(3, 12),
                    "field limit in a rule group must be a whole number"
                ),
                (
                    pos(4, 13),
                    "field labels in a rule group must be a mapping of names to string values"
                ),
                (pos(7, 15), "field expr in a rule must be a string"),
                (
                    pos(8, 32),
                    "the value of summary in annotations must be a string"
                ),
                (
                    pos(9, 9),
                    "field colour not found in a rule (valid fields: record, alert, expr, for, \
                     keep_firing_for, labels, annotations)"
                ),
                (pos(10, 9), "each entry of rules must be a mapping (a rule)"),
                (
                    pos(12, 12),
                    "field rules in a rule group must be a list of rules"
                ),
                (
                    pos(13, 14),
                    "field log_metrics in the top level of a rule file must be a list of log metrics"
                ),
            ],
            "{errs}"
        );
    }

    /// Prometheus reads only the first document of a file.
    #[test]
    fn only_the_first_document_counts() {
        let text = "groups:\n  - name: a\n---\ngroups: not even a list\n";
        let f = load_str("m.yaml", text, strict()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.groups.len(), 1);
    }

    /// A template error points into the file where the value's text stands
    /// verbatim: plain, quoted and literal-block scalars.
    #[test]
    fn template_errors_point_into_the_value() {
        let text = "\
groups:
  - name: a
    rules:
      - alert: A
        expr: up
        labels:
          plain: x {{ $nope }}
          quoted: \"x {{ nofunc }}\"
        annotations:
          block: |
            first line
            second {{ if }}
          escaped: \"\\tx {{ $nope }}\"
";
        let errs = match load_str("t.yaml", text, strict()) {
            Ok(_) => panic!("should be rejected"),
            Err(e) => e,
        };
        let positions: Vec<Pos> = errs.errors.iter().map(|e| e.pos).collect();
        // The escaped value cannot be mapped: its scalar's own position.
        assert_eq!(
            positions,
            [pos(7, 23), pos(8, 25), pos(12, 26), pos(13, 20)],
            "{errs}"
        );
    }

    #[test]
    fn empty_file_is_valid() {
        for text in ["", "# nothing yet\n", "groups: []\n"] {
            let f = load_str("e.yaml", text, strict()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert!(f.groups.is_empty() && f.log_metrics.is_empty());
        }
    }

    #[test]
    fn missing_file_is_reported() {
        let errs = match load_file(Path::new("/nonexistent/rules.yaml"), strict()) {
            Ok(_) => panic!("should be rejected"),
            Err(e) => e,
        };
        assert!(
            errs.to_string()
                .starts_with("/nonexistent/rules.yaml: cannot read rule file"),
            "{errs}"
        );
    }

    /// Go reads any scalar into a string field: `1`, `true`, null ("").
    #[test]
    fn label_values_of_any_scalar_type() {
        let text = "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: 1\n        labels: {n: 1, b: true, f: 1.50, e: , i: .inf, y: yes, h: 0x1F}\n";
        let f = load_str("v.yaml", text, strict()).unwrap_or_else(|e| panic!("{e}"));
        let r = &f.groups[0].rules[0];
        assert_eq!(r.expr_text, "1");
        assert_eq!(
            r.labels,
            [
                ("n".to_string(), "1".to_string()),
                ("b".into(), "true".into()),
                ("f".into(), "1.50".into()),
                ("e".into(), "".into()),
                ("i".into(), ".inf".into()),
                ("y".into(), "yes".into()),
                ("h".into(), "0x1F".into()),
            ]
        );
    }

    #[test]
    fn zero_durations_and_limits_mean_defaults() {
        let text = "\
groups:
  - name: a
    interval: 0
    limit: -1
    query_offset: 0s
    rules:
      - record: r
        expr: up
        for: 0
";
        let f = load_str("z.yaml", text, strict()).unwrap_or_else(|e| panic!("{e}"));
        let g = &f.groups[0];
        assert_eq!(g.interval, None);
        assert_eq!(g.limit, 0);
        assert_eq!(g.query_offset, Some(std::time::Duration::ZERO));
    }
}

mod log_metrics {
    use super::*;

    #[test]
    fn design_example_loads() {
        let text = r#"
log_metrics:
  - name: api_timeouts_total
    selector: '{service_name="api"}'
    min_severity: warn
    pattern: 'timeout|deadline exceeded'
  - name: oom_kills_total
    selector: '{host_name=~"web.*"}'
    pattern: 'Out of memory: Killed process (?P<pid>\d+) \((?P<comm>[^)]+)\)'
    labels:
      team: infra
groups:
  - name: api
    rules:
      - alert: ApiTimeouts
        expr: sum by (host_name) (increase(api_timeouts_total[5m])) > 5
        labels: {severity: page}
        annotations:
          summary: '{{ $labels.host_name }}: {{ $value }} timeouts in 5m'
"#;
        let f = load_str("l.yaml", text, strict()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.log_metrics.len(), 2);
        let m = &f.log_metrics[0];
        assert_eq!(m.name, "api_timeouts_total");
        assert_eq!(m.min_severity.as_deref(), Some("warn"));
        assert_eq!(m.pos, pos(3, 5));
        let re = f.log_metrics[1].pattern_regex.as_ref().map(|r| {
            r.capture_names()
                .flatten()
                .map(String::from)
                .collect::<Vec<_>>()
        });
        assert_eq!(re, Some(vec!["pid".to_string(), "comm".to_string()]));
        assert_eq!(f.log_metrics[1].labels.get("team"), "infra");
    }

    #[test]
    fn record_and_log_metric_share_no_name() {
        let text = "log_metrics:\n  - name: errors_total\n    selector: '{a=\"b\"}'\ngroups:\n  - name: g\n    rules:\n      - record: errors_total\n        expr: vector(1)\n";
        let errs = match load_str("l.yaml", text, strict()) {
            Ok(_) => panic!("should be rejected"),
            Err(e) => e,
        };
        assert_eq!(errs.errors.len(), 1, "{errs}");
        assert_eq!(errs.errors[0].pos, pos(7, 9), "{errs}");
        assert!(
            errs.errors[0].message.contains("log metric at 2:5"),
            "{errs}"
        );
    }

    #[test]
    fn bad_log_metrics_are_all_reported() {
        let text = r#"log_metrics:
  - name: a_total
    selector: 'up{job="x"}'
    min_severity: warning
    pattern: '(?P<severity>x)('
  - name: a_total
    selector: 'rate(x[5m])'
    pattern: '(?P<__x>y)'
    labels: {severity: high}
  - selector: '{a="b"}'
    patern: x
"#;
        let errs = match load_str("l.yaml", text, strict()) {
            Ok(_) => panic!("should be rejected"),
            Err(e) => e,
        };
        let positions: Vec<Pos> = errs.errors.iter().map(|e| e.pos).collect();
        assert_eq!(
            positions,
            [
                pos(3, 15),
                pos(4, 19),
                pos(5, 14),
                pos(6, 11),
                pos(7, 15),
                pos(8, 14),
                pos(9, 14),
                pos(10, 5),
                pos(11, 5),
            ],
            "{errs}"
        );
        assert!(
            errs.errors[1]
                .message
                .contains("valid: trace, debug, info, warn, error, fatal"),
            "{errs}"
        );
        assert!(
            errs.errors[8].message.contains("did you mean pattern?"),
            "{errs}"
        );
    }
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    const SEED: &str = "\
groups:
  - name: api
    interval: 30s
    labels: {team: api}
    rules:
      - alert: ApiDown
        expr: up{job=\"api\"} == 0
        for: 5m
        annotations:
          summary: '{{ $labels.instance }} down'
      - record: job:up:sum
        expr: sum by (job) (up)
log_metrics:
  - name: errors_total
    selector: '{service_name=\"api\"}'
    pattern: 'err (?P<code>\\d+)'
";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever an edit does to a valid file, loading never panics and
        /// every problem points inside the file.
        #[test]
        fn edited_files_never_panic_and_point_inside(
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), 0usize..3, "[ :\\-{}\\[\\]'\"a-z0-9\\n|>&*#$]{0,3}"),
                1..4,
            )
        ) {
            let mut text: Vec<char> = SEED.chars().collect();
            for (at, delete, insert) in edits {
                let i = at.index(text.len() + 1);
                let end = (i + delete).min(text.len());
                text.splice(i..end, insert.chars());
            }
            let text: String = text.into_iter().collect();
            let lines = text.lines().count().max(1);
            if let Err(errs) = load_str("e.yaml", &text, strict()) {
                prop_assert!(!errs.errors.is_empty());
                for e in &errs.errors {
                    prop_assert!(e.pos.line >= 1 && e.pos.line <= lines + 1, "{e} in\n{text}");
                    prop_assert!(e.pos.column >= 1, "{e} in\n{text}");
                    prop_assert!(!e.message.contains('\n'), "{e}");
                }
            }
        }
    }

    #[test]
    fn the_seed_itself_loads() {
        load_str("seed.yaml", SEED, strict()).unwrap_or_else(|e| panic!("{e}"));
    }
}
