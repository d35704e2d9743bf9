//! `trifecta ast symbols <uri>`: URI → resolve inside the segment → cache-aside → JSON.
//!
//! Order matters for side effects: the URI, the settings, the segment and the file are all
//! validated before the cache is opened, so bad input never creates a directory or a DB.
//! Cache trouble of any kind (lock timeout, corruption, newer schema, I/O) never fails the
//! command: the store absorbs what it can, and whatever escapes turns into an uncached run
//! with a truthful `miss_reason`.

use crate::cache::hot_tier::HotTier;
use crate::cache::service::{Served, SymbolCache, elapsed_ms};
use crate::cache::{Backend, CacheKey};
use crate::cli::SymbolsArgs;
use crate::config::Config;
use crate::error::{CliError, ErrorCode};
use crate::symbols::resolve::{self, ModuleFile};
use crate::symbols::uri::{SymUri, UriKind};
use crate::symbols::{Symbol, SymbolTable, SyntaxErrorLoc};
use crate::telemetry::event::{CommandResult, Phases, SymbolsByKind, SymbolsDetail, UriArgs};
use crate::telemetry::{Event, Level, Telemetry};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::time::Instant;

/// The success document. The first eight keys are the original contract, in its order; the
/// rest are additions (never renamed, only added). It also deserializes: a daemon's reply is
/// read back into it and printed by the client exactly as a local run prints it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SymbolsOutput {
    /// Always `"ok"`.
    pub status: Cow<'static, str>,
    /// Canonical absolute segment root.
    pub segment_root: String,
    /// Segment-relative module file, `/`-separated.
    pub file_rel: String,
    /// The module's top-level symbols, or the selected class/member for `type` URIs.
    pub symbols: Vec<Symbol>,
    /// `hit` or `miss`.
    pub cache_status: Cow<'static, str>,
    /// `<extractor tag>:<content hash>`; path-free and stable across runs and checkouts.
    pub cache_key: String,
    /// Why it missed, or `cache_hit`.
    pub miss_reason: Cow<'static, str>,
    /// The SQLite DB path when persistence is on (flag or env), else null.
    pub cache_db_path: Option<String>,
    /// The canonical form of the URI that was asked.
    pub uri: String,
    /// `memory` or `sqlite`: the store that actually answered (memory on fallback).
    pub cache_backend: Cow<'static, str>,
    /// Syntax-error regions; empty exactly when Python's grammar accepts the file. Survives hits.
    pub syntax_errors: Vec<SyntaxErrorLoc>,
}

/// Run the command.
pub fn run(args: &SymbolsArgs, cfg: &Config) -> Result<SymbolsOutput, CliError> {
    run_with(args, cfg, None)
}

/// Run the command, with the daemon's in-memory tier in front of the cache when `hot` is given
/// (the daemon answers `ast.symbols` through here: one code path for both).
pub fn run_with(
    args: &SymbolsArgs,
    cfg: &Config,
    hot: Option<&HotTier>,
) -> Result<SymbolsOutput, CliError> {
    let started = Instant::now();
    let Input {
        uri,
        root,
        file,
        class_path,
        bytes,
        resolve_ms,
        read_ms,
    } = match input(args, started) {
        Ok(i) => i,
        Err((e, uri)) => {
            // Still the command's one `ast.symbols` event: the code, the URI if it parsed.
            let ev = command_event(uri, Some(e.code), None, SymbolsDetail::default());
            crate::commands::early_failure_event(cfg, &args.segment, ev, started);
            return Err(e);
        }
    };
    let key = CacheKey::for_file(&file.file, &bytes);
    let telemetry = Telemetry::new(cfg.telemetry.for_segment(&root));
    let t = Instant::now();
    let (served, backend) = serve(&root, cfg, &telemetry, hot, &file.file_rel, &key, &bytes);
    let cache_ms = elapsed_ms(t);
    let lookup = match served.miss {
        None => ("hit", "cache_hit"),
        Some(reason) => ("miss", reason.as_str()),
    };
    let record = |ev: Event| {
        let line = ev.into_line().timed(elapsed_ms(started));
        telemetry.event(Level::Lite, line.cache(backend.as_str()));
        telemetry.flush();
    };

    let t = Instant::now();
    let symbols = match select(&uri, &class_path, &served.table) {
        Ok(s) => s,
        Err(e) => {
            // Still one `ast.symbols` per command: the lookup happened, the selection failed.
            let x = SymbolsDetail {
                file: Some(file.file_rel.clone()),
                ..SymbolsDetail::default()
            };
            record(command_event(
                Some(uri.to_string()),
                Some(e.code),
                Some(lookup),
                x,
            ));
            return Err(e);
        }
    };
    let select_ms = elapsed_ms(t);
    let out = SymbolsOutput {
        status: "ok".into(),
        segment_root: root.to_string_lossy().into_owned(),
        file_rel: file.file_rel.clone(),
        symbols,
        cache_status: lookup.0.into(),
        cache_key: key.to_string(),
        miss_reason: lookup.1.into(),
        cache_db_path: cfg.cache.persist.then(|| {
            crate::cache::cache_db_path(&root)
                .to_string_lossy()
                .into_owned()
        }),
        uri: uri.to_string(),
        cache_backend: backend.as_str().into(),
        syntax_errors: served.table.syntax_errors.clone(),
    };
    // Full level only: where the time went, and what the module contains.
    let phases = telemetry.enabled(Level::Full).then_some(Phases {
        resolve_ms,
        read_ms,
        cache_ms,
        select_ms,
    });
    // Built only when it will be written: turning an event into its line goes through a JSON
    // value, a measurable share of a daemon's memory-tier answer.
    if telemetry.enabled(Level::Lite) {
        let x = success_detail(&out, &served.table, phases);
        record(command_event(Some(out.uri.clone()), None, Some(lookup), x));
    }
    Ok(out)
}

/// The cache phase: the daemon's memory tier in front of the store when `hot` is given, else
/// the store alone. Returns what was served and the backend that served it.
fn serve(
    root: &resolve::Segment,
    cfg: &Config,
    telemetry: &Telemetry,
    hot: Option<&HotTier>,
    file_rel: &str,
    key: &CacheKey,
    bytes: &[u8],
) -> (Served, Backend) {
    match hot {
        Some(hot) => {
            SymbolCache::serve_with_tier(root, &cfg.cache, telemetry, hot, file_rel, key, bytes)
        }
        None => {
            let mut cache = SymbolCache::open(root, &cfg.cache, telemetry);
            let backend = cache.backend();
            let served = cache.lookup_or_extract(file_rel, key, bytes);
            cache.finish();
            (served, backend)
        }
    }
}

/// `x` of a successful command; `phases` (and the symbol counts by kind) at `full` only.
fn success_detail(
    out: &SymbolsOutput,
    table: &SymbolTable,
    phases: Option<Phases>,
) -> SymbolsDetail {
    SymbolsDetail {
        file: Some(out.file_rel.clone()),
        symbols_count: Some(out.symbols.len() as u64),
        cache_key: Some(out.cache_key.clone()),
        syntax_errors: Some(out.syntax_errors.len() as u64),
        symbols_by_kind: phases.is_some().then(|| symbols_by_kind(&table.symbols)),
        phases,
    }
}

/// The command's one `ast.symbols` event: `error` when it failed, `lookup` (cache status, miss
/// reason) once the cache was consulted.
fn command_event(
    uri: Option<String>,
    error: Option<ErrorCode>,
    lookup: Option<(&str, &str)>,
    x: SymbolsDetail,
) -> Event {
    Event::Symbols {
        args: UriArgs { uri },
        result: CommandResult {
            status: if error.is_some() { "error" } else { "ok" }.into(),
            error_code: error.map(|c| c.as_str().into()),
            cache_status: lookup.map(|l| l.0.into()),
            miss_reason: lookup.map(|l| l.1.into()),
        },
        x,
    }
}

/// What the command reads before it touches the cache.
struct Input {
    uri: SymUri,
    root: resolve::Segment,
    file: ModuleFile,
    class_path: Vec<String>,
    bytes: Vec<u8>,
    resolve_ms: f64,
    read_ms: f64,
}

/// Parse the URI, resolve the segment and the module, read it. On failure, the error and the
/// canonical URI if it parsed (for the failure event).
fn input(args: &SymbolsArgs, started: Instant) -> Result<Input, (CliError, Option<String>)> {
    let uri = SymUri::parse(&args.uri).map_err(|e| (e, None))?;
    let shown = || Some(uri.to_string());
    let root = resolve::segment_root(&args.segment).map_err(|e| (e, shown()))?;
    let (file, class_path) = match uri.kind() {
        UriKind::Mod => resolve::resolve_module(&root, uri.path()).map(|f| (f, Vec::new())),
        UriKind::Type => resolve::resolve_type(&root, uri.path()),
    }
    .map_err(|e| (e, shown()))?;
    let resolve_ms = elapsed_ms(started);
    let t = Instant::now();
    let bytes = read_source(&file).map_err(|e| (e, shown()))?;
    let read_ms = elapsed_ms(t);
    Ok(Input {
        uri,
        root,
        file,
        class_path,
        bytes,
        resolve_ms,
        read_ms,
    })
}

/// Largest module read, in bytes. The largest file in CPython's stdlib is under 1 MiB; a
/// 64 MiB "module" is generated data, and parsing it would only stall the caller.
pub const MAX_SOURCE_BYTES: u64 = 64 * 1024 * 1024;

/// Counts of top-level functions (sync/async), classes and, recursively, class members.
fn symbols_by_kind(symbols: &[Symbol]) -> SymbolsByKind {
    fn members(s: &[Symbol]) -> usize {
        s.iter()
            .filter_map(|x| x.members.as_deref())
            .map(|m| m.len() + members(m))
            .sum()
    }
    let count = |k: crate::symbols::SymbolKind, is_async: bool| {
        symbols
            .iter()
            .filter(|s| s.kind == k && s.is_async == is_async)
            .count()
    };
    use crate::symbols::SymbolKind::{Class, Function};
    SymbolsByKind {
        function: count(Function, false) as u64,
        async_function: count(Function, true) as u64,
        class: count(Class, false) as u64,
        member: members(symbols) as u64,
    }
}

fn read_source(file: &ModuleFile) -> Result<Vec<u8>, CliError> {
    let fail = |why: String| {
        CliError::new(
            ErrorCode::FileReadError,
            format!("cannot read {}: {why}", file.file_rel),
        )
    };
    crate::symbols::read::read_capped(&file.file, MAX_SOURCE_BYTES).map_err(|e| fail(e.to_string()))
}

/// For `type` URIs, narrow the table to the class (and member) the URI names.
fn select(
    uri: &SymUri,
    class_path: &[String],
    table: &SymbolTable,
) -> Result<Vec<Symbol>, CliError> {
    if uri.kind() == UriKind::Mod {
        return Ok(table.symbols.clone());
    }
    let not_found = |what: &str| {
        CliError::new(
            ErrorCode::SymbolNotFound,
            format!("{what} not found for {uri}"),
        )
    };
    let mut scope: &[Symbol] = &table.symbols;
    let mut found: Option<&Symbol> = None;
    for name in class_path {
        let class = scope
            .iter()
            .rev() // a later definition rebinds the name, as at run time
            .find(|s| s.name == *name && s.kind == crate::symbols::SymbolKind::Class)
            .ok_or_else(|| not_found(&format!("class {name}")))?;
        scope = class.members.as_deref().unwrap_or(&[]);
        found = Some(class);
    }
    let class = found.ok_or_else(|| not_found("class"))?;
    match uri.member() {
        None => Ok(vec![class.clone()]),
        Some(m) => {
            let member = scope
                .iter()
                .rev()
                .find(|s| s.name == m)
                .ok_or_else(|| not_found(&format!("member {m}")))?;
            Ok(vec![member.clone()])
        }
    }
}
