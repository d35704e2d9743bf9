//! `trifecta-verify`: the release-gating harness. It reproduces the audit method of the P1
//! walkthrough (Gate 1 tests in the checkout, Gate 2 clean worktree build + tests, Gate 3
//! evidence signals) and the P2 exit criteria as declarative gates (`gates/*.toml`) over fixture
//! scenarios (`scenarios/*/scenario.toml`), and writes audit-grade reports.
//!
//! Rooms: [`spec`] (data model + validation) → [`runner`] (selection, tokio, events) →
//! [`steps`] (actions and checks) using [`workspace`] (worktrees, fixture copies),
//! [`process`] (supervised children) and [`jq`] (the only file that knows jaq) → [`report`]
//! (console, Markdown, JSON, JUnit). [`evidence`] captures the Evidence Header. CI matrices:
//! [`shard`] splits the selection (`gates --shard K/N`), [`merge`] joins the shard reports.
//!
//! Exit codes (also in `--help` and `reports/README.md`): 0 every required gate that ran
//! passed; 1 a required gate failed; 2 harness/configuration error (invalid specs, an unknown
//! `--only` id, a harness failure during a gate, reports not writable); 4 nothing ran (valid
//! filters that select no gate). A run with required gates filtered out is marked partial.
//! `merge` returns the merged run's code, or 2 when it refuses shards that are not one run.

pub mod event;
pub mod evidence;
pub mod excerpt;
pub mod jq;
pub mod merge;
pub mod process;
pub mod redis_server;
pub mod report;
pub mod runner;
pub mod shard;
pub mod spec;
pub mod steps;
pub mod workspace;

use clap::{Args, Parser, Subcommand};
use event::{EXIT_FAILED, EXIT_HARNESS, EXIT_NOTHING_RAN, EXIT_OK};
use runner::{Filter, RunOptions};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

const EXIT_HELP: &str = "Exit codes:
  0  every required gate that ran passed
  1  a required gate failed (optional gates never fail the run)
  2  harness or configuration error: invalid gate/scenario specs (reported as file:line),
     an unknown --only id (the message lists the known ids), a harness failure inside a
     gate (verdict unknown), reports not writable
  4  nothing ran: valid filters selected no gate (e.g. a --tag no gate has), or, with
     --shard, no gate fell to this shard (its report is still written for `merge`)

A run that filtered out required gates (--only, --tag) is a partial run, not a release
verdict: the reports say so (report.json \"partial\": true, \"required_not_run\"), even on exit 0.";

const MERGE_EXIT_HELP: &str = "Exit codes (those of the merged run, as if unsharded):
  0  every required gate that ran passed
  1  a required gate failed
  2  a gate's verdict is unknown (harness error in a shard), reports not writable, or the merge
     was refused: a DIR without a shard report.json, shards of different commits, binaries
     (trifecta_blake3), seeds, revisions, gate selections or N, a shard given twice, a missing
     shard (an incomplete set is never merged), or shards whose partitions disagree
  4  nothing ran in any shard";

/// Release gates for trifecta: audit-method verification with evidence reports.
#[derive(Debug, Parser)]
#[command(
    name = "trifecta-verify",
    version,
    long_version = crate::build_info::long_version(),
    about,
    after_help = EXIT_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Validate and run gates, then write reports/<run-id>/{walkthrough.md,report.json,junit.xml}.
    #[command(after_help = EXIT_HELP)]
    Gates(GatesArgs),
    /// List gates (id, required, tags, title) without running them.
    List(SpecArgs),
    /// Validate every gate and scenario without running anything (exit 0 or 2).
    Check(SpecArgs),
    /// Join the reports of `gates --shard 1/N ... N/N` into one run (same verdicts and exit code).
    #[command(after_help = MERGE_EXIT_HELP)]
    Merge(MergeArgs),
    /// Hold the cache lock file (helper process spawned by the `hold-lock` step).
    #[command(hide = true)]
    HoldLock(HoldLockArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout, or write one page per command into `--dir`.
    Man(ManArgs),
}

#[derive(Debug, Args)]
struct CompletionsArgs {
    /// The shell to write completions for.
    shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
struct ManArgs {
    /// Write `<name>.1` for the command and each subcommand into this directory instead.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The clap definition of `trifecta-verify`, for completions and man pages.
pub fn cli_command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// `completions` and `man`: documentation of the command line, written to stdout (or `--dir`).
fn docs(cmd: &Cmd) -> i32 {
    let done = match cmd {
        Cmd::Completions(a) => {
            crate::cli_docs::print_completions(cli_command(), a.shell).map_err(|e| e.to_string())
        }
        Cmd::Man(ManArgs { dir: None }) => crate::cli_docs::man_page(cli_command())
            .map_err(|e| e.to_string())
            .and_then(|p| crate::output::write_stdout(&p).map_err(|e| e.to_string())),
        Cmd::Man(ManArgs { dir: Some(d) }) => crate::cli_docs::write_man_pages(cli_command(), d)
            .map(|files| println!("wrote {} page(s) to {}", files.len(), d.display()))
            .map_err(|e| format!("--dir {}: {e}", d.display())),
        _ => Ok(()),
    };
    match done {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("trifecta-verify: {e}");
            EXIT_HARNESS
        }
    }
}

#[derive(Debug, Args)]
struct SpecArgs {
    /// Folder of gate files (*.toml).
    #[arg(long, default_value = "gates")]
    gates_dir: PathBuf,
    /// Folder of scenarios (<name>/scenario.toml).
    #[arg(long, default_value = "scenarios")]
    scenarios_dir: PathBuf,
}

#[derive(Debug, Args)]
struct GatesArgs {
    #[command(flatten)]
    specs: SpecArgs,
    /// Run only these gate ids (repeatable).
    #[arg(long, num_args = 1..)]
    only: Vec<String>,
    /// Run only gates with any of these tags (repeatable).
    #[arg(long)]
    tag: Vec<String>,
    /// Revision for worktree gates.
    #[arg(long, default_value = "HEAD")]
    rev: String,
    /// Seed for every fault schedule (default: chosen and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Where reports/<run-id>/ is written.
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
    /// Keep clean worktrees (and their target dirs) after the run.
    #[arg(long)]
    keep_worktrees: bool,
    /// Gates run in parallel.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Binary under test (default: `trifecta` next to this executable).
    #[arg(long)]
    trifecta: Option<PathBuf>,
    /// Repository checkout (default: the git repository containing the current directory).
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Run against a deliberately broken build: switch on these named bugs
    /// (`TRIFECTA_MUTANT`, comma-separated) in every `trifecta` the gates start. Debug builds of
    /// trifecta only; the report says so, and the run is never a release verdict.
    #[arg(long, value_name = "NAME[,NAME…]")]
    mutant: Option<String>,
    /// Run only part K of N of the selected gates (CI matrices; join with `merge`).
    #[arg(long, value_name = "K/N")]
    shard: Option<shard::ShardSpec>,
    /// Balance shards by the gate durations in this earlier report.json (or run dir);
    /// without it, sorted gate ids are dealt round-robin.
    #[arg(long, value_name = "REPORT", requires = "shard")]
    durations: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// Run directories of the shards (each holds a report.json).
    #[arg(required = true, num_args = 1..)]
    dirs: Vec<PathBuf>,
    /// Where reports/<run-id>/ of the merged run is written.
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
}

#[derive(Debug, Args)]
struct HoldLockArgs {
    /// Lock file (created with its directory if missing).
    path: PathBuf,
    /// Exclusive instead of shared.
    #[arg(long)]
    exclusive: bool,
    /// How long to hold it.
    #[arg(long)]
    ms: u64,
}

fn print_spec_errors(errors: &[spec::SpecError]) {
    let mut err = std::io::stderr().lock();
    for e in errors {
        let _ = writeln!(err, "error: {e}");
    }
    let _ = writeln!(
        err,
        "trifecta-verify: {} problem(s) in the specs; nothing was run",
        errors.len()
    );
}

fn load(args: &SpecArgs) -> Result<spec::Specs, i32> {
    spec::load_all(&args.gates_dir, &args.scenarios_dir).map_err(|e| {
        print_spec_errors(&e);
        EXIT_HARNESS
    })
}

/// Run `trifecta-verify` with `args` (including the program name); returns the exit code.
pub fn main_with_args(args: Vec<OsString>) -> i32 {
    let command_line = args
        .iter()
        .map(|a| process::quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                EXIT_HARNESS
            } else {
                EXIT_OK
            };
        }
    };
    match cli.command {
        Cmd::Check(a) => match load(&a) {
            Ok(s) => {
                println!(
                    "ok: {} gate(s), {} scenario(s) valid",
                    s.gates.len(),
                    s.scenarios.len()
                );
                EXIT_OK
            }
            Err(c) => c,
        },
        Cmd::List(a) => match load(&a) {
            Ok(s) => {
                for g in &s.gates {
                    println!(
                        "{:<28} {:<9} [{}] {}",
                        g.id,
                        if g.required { "required" } else { "optional" },
                        g.tags.join(","),
                        g.title
                    );
                }
                EXIT_OK
            }
            Err(c) => c,
        },
        Cmd::HoldLock(a) => hold_lock(&a),
        c @ (Cmd::Completions(_) | Cmd::Man(_)) => docs(&c),
        Cmd::Merge(a) => merge::run(&a.dirs, &absolute(&a.report_dir), &command_line),
        Cmd::Gates(a) => gates(a, &command_line),
    }
}

/// The hidden helper: take the lock, say `locked`, hold it, exit.
fn hold_lock(a: &HoldLockArgs) -> i32 {
    let res = (|| -> std::io::Result<()> {
        if let Some(p) = a.path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&a.path)?;
        if a.exclusive {
            f.lock()?;
        } else {
            f.lock_shared()?;
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "locked")?;
        out.flush()?;
        std::thread::sleep(std::time::Duration::from_millis(a.ms));
        f.unlock()
    })();
    match res {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("hold-lock {}: {e}", a.path.display());
            EXIT_HARNESS
        }
    }
}

fn default_trifecta() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("trifecta"))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The `--shard` plan over the filter's selection (None when not sharded), announced on
/// stderr; an unreadable durations file is a configuration error (exit 2).
fn plan_shard(
    a: &GatesArgs,
    specs: &spec::Specs,
    filter: &Filter,
) -> Result<Option<shard::ShardInfo>, i32> {
    let Some(spec) = a.shard else {
        return Ok(None);
    };
    let selected: Vec<String> = specs
        .gates
        .iter()
        .filter(|g| filter.selects(g))
        .map(|g| g.id.clone())
        .collect();
    let durations = match &a.durations {
        Some(p) => match shard::Durations::read(p) {
            Ok(d) => Some((d, p.display().to_string())),
            Err(e) => {
                eprintln!("trifecta-verify: {e}");
                return Err(EXIT_HARNESS);
            }
        },
        None => None,
    };
    let durations = durations.as_ref().map(|(d, src)| (d, src.as_str()));
    let plan = shard::plan(&selected, spec, durations);
    eprintln!("trifecta-verify: {}", plan.summary());
    Ok(Some(plan))
}

fn gates(a: GatesArgs, command_line: &str) -> i32 {
    let specs = match load(&a.specs) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let filter = Filter {
        only: a.only.clone(),
        tags: a.tag.clone(),
    };
    if let Err(code) = check_selection(&a, &specs, &filter) {
        return code;
    }
    let shard = match plan_shard(&a, &specs, &filter) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (trifecta, verify_exe) = match binaries(&a) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let start_dir = a.repo.clone().unwrap_or_else(|| PathBuf::from("."));
    let checkout =
        workspace::repo_root(&absolute(&start_dir)).unwrap_or_else(|_| absolute(&start_dir));
    let (seed, seed_source) = seed(a.seed);
    let run_id = format!(
        "{}-{}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let report_dir = absolute(&a.report_dir);
    let run_dir = report_dir.join(&run_id);
    if let Err(e) = std::fs::create_dir_all(&run_dir) {
        eprintln!("trifecta-verify: cannot create {}: {e}", run_dir.display());
        return EXIT_HARNESS;
    }
    let evidence = evidence::gather(
        &checkout,
        &trifecta,
        command_line,
        seed,
        seed_source,
        &a.rev,
        a.mutant.as_deref(),
    );
    let opts = RunOptions {
        filter,
        shared: steps::Shared {
            run_id,
            seed,
            trifecta,
            verify_exe,
            checkout,
            rev: a.rev.clone(),
            keep_worktrees: a.keep_worktrees,
            run_dir,
            mutant: a.mutant.clone(),
        },
        report_dir,
        jobs: a.jobs,
        evidence,
        shard,
    };
    let mut reporters =
        report::Reporters::new(opts.report_dir.clone(), opts.shared.run_dir.clone());
    let rep = runner::run(&specs, &opts, &mut |ev| reporters.on(ev));
    match reporters.exit_code().unwrap_or(rep.exit_code) {
        c @ (EXIT_OK | EXIT_FAILED | EXIT_HARNESS | EXIT_NOTHING_RAN) => c,
        _ => EXIT_HARNESS,
    }
}

/// `--only`, `--tag` and `--mutant` name real things, and select at least one gate; `Err` is
/// the exit code after the message.
fn check_selection(a: &GatesArgs, specs: &spec::Specs, filter: &Filter) -> Result<(), i32> {
    let unknown: Vec<&String> = a
        .only
        .iter()
        .filter(|id| !specs.gates.iter().any(|g| &g.id == *id))
        .collect();
    if !unknown.is_empty() {
        // A typo in --only must not shrink the run silently (or turn it into "nothing ran").
        let known: Vec<&String> = specs.gates.iter().map(|g| &g.id).collect();
        eprintln!(
            "trifecta-verify: error: --only names unknown gate id(s) {}; known ids: {}",
            crate::output::quoted_list(&unknown),
            crate::output::quoted_list(&known)
        );
        return Err(EXIT_HARNESS);
    }
    if !specs.gates.iter().any(|g| filter.selects(g)) {
        eprintln!(
            "trifecta-verify: nothing to run: no gate matches --only {} --tag {}",
            crate::output::quoted_list(&a.only),
            crate::output::quoted_list(&a.tag)
        );
        return Err(EXIT_NOTHING_RAN);
    }
    if let Some(m) = &a.mutant {
        // Names only: whether the binary under test carries mutants is its own check (a
        // release build refuses TRIFECTA_MUTANT with INVALID_ARGUMENT).
        let unknown: Vec<&str> = m
            .split(',')
            .map(str::trim)
            .filter(|n| crate::mutant::Mutant::parse(n).is_none())
            .collect();
        if !unknown.is_empty() || m.trim().is_empty() {
            eprintln!(
                "trifecta-verify: --mutant {}: unknown mutant name(s) {}",
                crate::output::quoted(m),
                crate::output::quoted_list(&unknown)
            );
            return Err(EXIT_HARNESS);
        }
    }
    Ok(())
}

/// The binary under test and the verifier itself, as absolute paths.
fn binaries(a: &GatesArgs) -> Result<(PathBuf, PathBuf), i32> {
    let trifecta = match a.trifecta.clone().or_else(default_trifecta) {
        Some(p) if p.is_file() => absolute(&p),
        other => {
            eprintln!(
                "trifecta-verify: binary under test not found ({}); build it (`cargo build`) or pass --trifecta",
                other.map(|p| p.display().to_string()).unwrap_or_default()
            );
            return Err(EXIT_HARNESS);
        }
    };
    let verify_exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("trifecta-verify: cannot locate own executable: {e}");
            return Err(EXIT_HARNESS);
        }
    };
    Ok((trifecta, verify_exe))
}

/// `--seed`, else one drawn from the clock, with where it came from.
fn seed(flag: Option<u64>) -> (u64, &'static str) {
    match flag {
        Some(s) => (s, "flag"),
        None => {
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            (n % 1_000_000_007, "default")
        }
    }
}
