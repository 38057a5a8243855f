//! `tocsinctl`, the operator's CLI. Parses the command line and hands over
//! to `tocsin_collector::ctl`; the process exit code is the command's.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tocsin_collector::ctl::client::{Client, ClientOptions, DEFAULT_URL};
use tocsin_collector::ctl::{self, Output, agents, error_groups, logs, query, rules};
use tocsin_rules::unittest::RunOptions;

/// Rule evaluation builds and drops many small label sets; mimalloc
/// handles that churn far better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tocsinctl", version, about = "Tocsin's operator CLI")]
struct Cli {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: Command,
}

/// How the commands that talk to a running collector reach it.
#[derive(Args)]
struct RemoteArgs {
    /// The collector's HTTP API.
    #[arg(
        long,
        global = true,
        env = "TOCSIN_URL",
        hide_env_values = true,
        default_value = DEFAULT_URL
    )]
    url: String,
    /// Bearer token for the API (a token of role read; admin for
    /// `agents forget`).
    #[arg(long, global = true, env = "TOCSIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM CA certificate that signed the collector's certificate (https).
    #[arg(long, global = true, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

impl RemoteArgs {
    fn client(&self) -> Result<Client, ctl::client::CtlError> {
        Client::new(&ClientOptions {
            url: self.url.clone(),
            token: self.token.clone(),
            ca_file: self.ca_file.clone(),
        })
    }
}

#[derive(Args, Clone, Copy)]
struct OutputArgs {
    /// `table` for people, `json` for the API's answer unchanged.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: OutputArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputArg {
    Table,
    Json,
}

impl From<OutputArgs> for Output {
    fn from(o: OutputArgs) -> Output {
        match o.output {
            OutputArg::Table => Output::Table,
            OutputArg::Json => Output::Json,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Rule files: validation and unit tests.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Logs: stored records of a running collector, and offline
    /// error-group mining.
    Logs {
        #[command(subcommand)]
        command: LogsCommand,
    },
    /// PromQL against a running collector: `query EXPR` (instant, as
    /// `promtool query instant`) or `query range EXPR`.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Query {
        #[command(subcommand)]
        command: Option<QueryCommand>,
        /// The PromQL expression.
        #[arg(required = true)]
        expr: Option<String>,
        /// Evaluation time, RFC 3339 or Unix seconds (default: now).
        #[arg(long)]
        time: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The agents a running collector knows.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// The error groups of a running collector.
    ErrorGroups {
        #[command(subcommand)]
        command: ErrorGroupsCommand,
    },
}

#[derive(Subcommand)]
enum QueryCommand {
    /// An instant query (the same as `query EXPR`).
    Instant {
        expr: String,
        /// Evaluation time, RFC 3339 or Unix seconds (default: now).
        #[arg(long)]
        time: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A range query.
    Range {
        expr: String,
        /// RFC 3339 or Unix seconds.
        #[arg(long)]
        start: String,
        /// RFC 3339 or Unix seconds.
        #[arg(long)]
        end: String,
        /// Resolution: a duration (15s) or seconds.
        #[arg(long)]
        step: String,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// Every known agent: host, version, interval, address, last seen,
    /// whether it is up, clock skew.
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Forget an agent (needs an admin token); it comes back as new with
    /// its next report.
    Forget {
        /// The agent's id (`tocsinctl agents list` shows it).
        id: String,
    },
}

#[derive(Subcommand)]
enum ErrorGroupsCommand {
    /// Every error group, most recently seen first.
    List {
        #[command(flatten)]
        output: OutputArgs,
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
    /// Stored log records of a running collector, newest first.
    Query {
        /// A selector over the record labels, e.g. '{service_name="api"}'.
        selector: Option<String>,
        /// The minimum severity: trace, debug, info, warn, error or fatal.
        #[arg(long)]
        severity: Option<String>,
        /// Records of the last this long (30m, 1h, 2d).
        #[arg(long, conflicts_with = "start")]
        since: Option<String>,
        /// RFC 3339 or Unix seconds.
        #[arg(long)]
        start: Option<String>,
        /// RFC 3339 or Unix seconds.
        #[arg(long)]
        end: Option<String>,
        /// Records whose body contains this text.
        #[arg(long, conflicts_with = "regex")]
        contains: Option<String>,
        /// Records whose body matches this regular expression.
        #[arg(long)]
        regex: Option<String>,
        /// At most this many records.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        output: OutputArgs,
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
    let remote = &cli.remote;
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
            LogsCommand::Query {
                selector,
                severity,
                since,
                start,
                end,
                contains,
                regex,
                limit,
                output,
            } => {
                let q = logs::LogsQuery {
                    selector,
                    severity,
                    since,
                    start,
                    end,
                    contains,
                    regex,
                    limit,
                };
                logs::query(&remote.client()?, &q, output.into(), &mut out, &mut err)?
            }
        },
        Command::Query {
            command,
            expr,
            time,
            output,
        } => {
            let (expr, time, output) = match (command, expr) {
                (
                    Some(QueryCommand::Range {
                        expr,
                        start,
                        end,
                        step,
                        output,
                    }),
                    _,
                ) => {
                    let q = query::RangeQuery {
                        expr,
                        start,
                        end,
                        step,
                    };
                    let code =
                        query::range(&remote.client()?, &q, output.into(), &mut out, &mut err)?;
                    out.flush().context("writing output")?;
                    return Ok(code);
                }
                (Some(QueryCommand::Instant { expr, time, output }), _) => (expr, time, output),
                (None, Some(expr)) => (expr, time, output),
                (None, None) => anyhow::bail!("query: give an expression (tocsinctl query EXPR)"),
            };
            let q = query::InstantQuery { expr, time };
            query::instant(&remote.client()?, &q, output.into(), &mut out, &mut err)?
        }
        Command::Agents { command } => match command {
            AgentsCommand::List { output } => {
                agents::list(&remote.client()?, output.into(), &mut out, &mut err)?
            }
            AgentsCommand::Forget { id } => agents::forget(&remote.client()?, &id, &mut out)?,
        },
        Command::ErrorGroups { command } => match command {
            ErrorGroupsCommand::List { output } => {
                error_groups::list(&remote.client()?, output.into(), &mut out, &mut err)?
            }
        },
    };
    out.flush().context("writing output")?;
    Ok(code)
}
