//! `tocsinctl`, the operator's CLI. Parses the command line and hands over
//! to `tocsin_collector::ctl`; the process exit code is the command's.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tocsin_collector::ctl::{self, rules};
use tocsin_rules::unittest::RunOptions;

/// Rule evaluation builds and drops many small label sets; mimalloc
/// handles that churn far better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tocsinctl", version, about = "Tocsin's operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rule files: validation and unit tests.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Logs: offline error-group mining.
    Logs {
        #[command(subcommand)]
        command: LogsCommand,
    },
}

#[derive(Subcommand)]
enum LogsCommand {
    /// Mine a log file's templates as the collector's error grouping does:
    /// prints `COUNT<TAB>ID<TAB>TEMPLATE` per group, most frequent first.
    Patterns {
        /// The log file, one record per line.
        file: PathBuf,
        /// Print each input line's group id instead, one per line.
        #[arg(long)]
        assign: bool,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check rule files for errors (as `promtool check rules`).
    Check {
        /// Rule files to check (standard input when none is given).
        files: Vec<PathBuf>,
        /// Lint checks to run.
        #[arg(long, value_enum, default_value = "duplicate-rules")]
        lint: LintArg,
        /// Exit with status 3 when lint problems are found.
        #[arg(long)]
        lint_fatal: bool,
        /// Ignore keys the rule-file schema does not know.
        #[arg(long)]
        ignore_unknown_fields: bool,
    },
    /// Run rule unit tests (as `promtool test rules`).
    Test {
        /// Unit-test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only run test groups whose name matches this regular expression
        /// (repeatable; any match selects a group).
        #[arg(long)]
        run: Vec<String>,
        /// Ignore keys the rule-file schema does not know.
        #[arg(long)]
        ignore_unknown_fields: bool,
        /// Write JUnit XML results to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Show alert mismatches as a coloured diff of expected and got.
        #[arg(long)]
        diff: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LintArg {
    /// Every lint check (today: duplicate rules).
    All,
    /// Rules that write the same series.
    DuplicateRules,
    None,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tocsinctl: {e:#}");
            ExitCode::from(ctl::FAILURE)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let code = match cli.command {
        Command::Rules { command } => match command {
            RulesCommand::Check {
                files,
                lint,
                lint_fatal,
                ignore_unknown_fields,
            } => {
                let opts = rules::CheckOptions {
                    lint: match lint {
                        LintArg::All | LintArg::DuplicateRules => rules::Lint::DuplicateRules,
                        LintArg::None => rules::Lint::None,
                    },
                    lint_fatal,
                    ignore_unknown_fields,
                };
                rules::check(
                    &files,
                    &opts,
                    &mut std::io::stdin().lock(),
                    &mut out,
                    &mut err,
                )
                .context("writing output")?
            }
            RulesCommand::Test {
                files,
                run,
                ignore_unknown_fields,
                junit,
                diff,
            } => {
                let opts = RunOptions {
                    run,
                    ignore_unknown_fields,
                    diff,
                };
                let mut junit_file = match &junit {
                    Some(p) => Some(
                        std::fs::File::create(p)
                            .with_context(|| format!("creating {}", p.display()))?,
                    ),
                    None => None,
                };
                let junit_out = junit_file.as_mut().map(|f| f as &mut dyn Write);
                rules::test(&files, &opts, junit_out, &mut out, &mut err)?
            }
        },
        Command::Logs { command } => match command {
            LogsCommand::Patterns { file, assign } => {
                tocsin_collector::patterns::run_patterns_cli(&file, assign, &mut out)?;
                0
            }
        },
    };
    out.flush().context("writing output")?;
    Ok(code)
}
