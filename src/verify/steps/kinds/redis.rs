//! `kind = "redis"`: the gate's own `redis-server` (see [`crate::verify::redis_server`]), so a
//! gate can share one remote cache between two "machines", take it away in the middle of a
//! storm, bring it back, and damage what it stores the ways a real fleet meets.
//!
//! Actions: `start` (free port, `{redis}` expands to its URL), `kill`, `restart`, `outage` (kill
//! and restart in the background while the next steps run; `await-outage` joins it), `damage`
//! (every stored value: truncated, bit-flipped, foreign format, other extractor), `flush`, and
//! the one check, `keys` (how many keys the server holds: proves what was, or was not, written).
//! The server lives in the gate's [`GateCtx::state`] and is killed when the gate ends.

use super::{StepFuture, StepKind, ValidateCx};
use crate::cache::CacheKey;
use crate::cache::remote::record;
use crate::verify::redis_server::{self, RedisServer};
use crate::verify::steps::{GateCtx, StepResult, in_process};
use serde::Deserialize;
use std::thread::JoinHandle;
use std::time::Duration;

/// The `kind` spelling.
pub const KIND: &str = "redis";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "action = \"start\"";

/// What a `redis` step does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RedisAction {
    /// Start a server on a free port of 127.0.0.1 (`{redis}` is its URL from then on).
    Start,
    /// `kill -9` it.
    Kill,
    /// Start it again on the same port (empty: no persistence).
    Restart,
    /// In the background: kill it `down_after_ms` from now, restart it `down_for_ms` later,
    /// while the next steps (a storm) run.
    Outage,
    /// Wait for the background outage to end (the server is up again).
    AwaitOutage,
    /// Damage every stored value (`damage` says how).
    Damage,
    /// Delete every key.
    Flush,
    /// A check: the number of keys is `expect_keys` (or at least `min_keys`).
    Keys,
}

/// How a `redis` `damage` step damages the stored records.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RedisDamage {
    /// Cut each value in half.
    Truncate,
    /// Flip the low bit of the first digit in each payload (still valid JSON: only the
    /// checksum can tell).
    Flip,
    /// Rewrite each record as format version 99, with a valid checksum.
    ForeignFormat,
    /// Rewrite each record as written by another extractor, with a valid checksum.
    OtherExtractor,
}

impl RedisDamage {
    /// The spec spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RedisDamage::Truncate => "truncate",
            RedisDamage::Flip => "flip",
            RedisDamage::ForeignFormat => "foreign-format",
            RedisDamage::OtherExtractor => "other-extractor",
        }
    }
}

/// `kind = "redis"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStep {
    /// What to do.
    pub action: RedisAction,
    /// `outage`: delay before the kill.
    #[serde(default)]
    pub down_after_ms: u64,
    /// `outage`: how long the server stays down.
    #[serde(default)]
    pub down_for_ms: u64,
    /// `damage`: how.
    pub damage: Option<RedisDamage>,
    /// `keys`: exact count.
    pub expect_keys: Option<usize>,
    /// `keys`: minimum count.
    pub min_keys: Option<usize>,
}

impl StepKind for RedisStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn is_check(&self) -> bool {
        self.action == RedisAction::Keys
    }

    fn needs_segment(&self) -> bool {
        false
    }

    fn label(&self) -> String {
        label(self)
    }

    /// Each action takes exactly the fields it uses.
    fn validate(&self, _cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        let is = |a: RedisAction| self.action == a;
        if self.damage.is_some() != is(RedisAction::Damage) {
            let why = "`damage` goes with (and only with) action `damage`";
            err("damage", why.into());
        }
        let counts = self.expect_keys.is_some() || self.min_keys.is_some();
        if counts != is(RedisAction::Keys) {
            let why = "action `keys` needs expect_keys or min_keys; other actions take neither";
            err("expect_keys", why.into());
        }
        let timed = self.down_after_ms > 0 || self.down_for_ms > 0;
        if timed != is(RedisAction::Outage) || (is(RedisAction::Outage) && self.down_for_ms == 0) {
            let why = "action `outage` needs down_for_ms > 0 (and optionally down_after_ms)";
            err("down_for_ms", why.into());
        }
    }

    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, index: usize) -> StepFuture<'a> {
        Box::pin(exec(ctx, self, index))
    }
}

/// The server of one gate: running here, or inside a background outage.
#[derive(Default)]
pub struct RedisState {
    server: Option<RedisServer>,
    outage: Option<JoinHandle<(RedisServer, Result<(), String>)>>,
}

/// Short label for reports.
fn label(r: &RedisStep) -> String {
    match r.action {
        RedisAction::Start => "start redis-server".into(),
        RedisAction::Kill => "kill -9 redis-server".into(),
        RedisAction::Restart => "restart redis-server (empty)".into(),
        RedisAction::Outage => format!(
            "redis-server down at +{} ms for {} ms",
            r.down_after_ms, r.down_for_ms
        ),
        RedisAction::AwaitOutage => "redis-server back up".into(),
        RedisAction::Damage => format!(
            "damage every value: {}",
            r.damage.map_or("?", RedisDamage::as_str)
        ),
        RedisAction::Flush => "FLUSHALL".into(),
        RedisAction::Keys => match (r.expect_keys, r.min_keys) {
            (Some(n), _) => format!("redis holds exactly {n} keys"),
            (_, Some(n)) => format!("redis holds at least {n} keys"),
            _ => "redis keys".into(),
        },
    }
}

/// Execute one `redis` step.
async fn exec(ctx: &mut GateCtx, r: &RedisStep, index: usize) -> StepResult {
    let mut out = match r.action {
        RedisAction::Start => start(ctx),
        RedisAction::AwaitOutage => await_outage(ctx).await,
        RedisAction::Outage => outage(ctx, r),
        _ => match ctx.state::<RedisState>().server.as_mut() {
            None => StepResult::error("no redis-server running: a `start` step must come first"),
            Some(s) => on_server(s, r),
        },
    };
    let pid = ctx
        .state::<RedisState>()
        .server
        .as_ref()
        .and_then(RedisServer::pid);
    out.commands = vec![in_process(format!("redis {} (pid {pid:?})", label(r)))];
    if let Some(log) = ctx.log(&format!("step-{index}-redis.log"), &out.detail) {
        out.logs.push(log);
    }
    out
}

fn start(ctx: &mut GateCtx) -> StepResult {
    if ctx.state::<RedisState>().server.is_some() || ctx.state::<RedisState>().outage.is_some() {
        return StepResult::error("redis-server already started in this gate");
    }
    if !redis_server::available() {
        return StepResult::error("redis-server not found (Debian: apt-get install redis-server)");
    }
    match RedisServer::start(Some(ctx.log_dir.join("redis-server.log"))) {
        Ok(s) => {
            let detail = format!("redis-server pid {:?} on 127.0.0.1:{}", s.pid(), s.port());
            ctx.extra_vars.insert("{redis}", s.url());
            ctx.state::<RedisState>().server = Some(s);
            StepResult::pass(detail)
        }
        Err(e) => StepResult::error(format!("start redis-server: {e}")),
    }
}

fn outage(ctx: &mut GateCtx, r: &RedisStep) -> StepResult {
    let Some(mut s) = ctx.state::<RedisState>().server.take() else {
        return StepResult::error("no redis-server running: a `start` step must come first");
    };
    let (after, down) = (
        Duration::from_millis(r.down_after_ms),
        Duration::from_millis(r.down_for_ms),
    );
    // A thread, not a task: the kill and the restart must happen on time while the storm's
    // tasks keep the runtime busy. It owns the server, so the server dies with it at worst.
    ctx.state::<RedisState>().outage = Some(std::thread::spawn(move || {
        std::thread::sleep(after);
        s.kill();
        std::thread::sleep(down);
        let up = s.restart().map_err(|e| e.to_string());
        (s, up)
    }));
    StepResult::pass(format!("outage scheduled: down at +{after:?} for {down:?}"))
}

async fn await_outage(ctx: &mut GateCtx) -> StepResult {
    let Some(h) = ctx.state::<RedisState>().outage.take() else {
        return StepResult::error("no outage in progress");
    };
    let joined = tokio::task::spawn_blocking(move || h.join()).await;
    match joined {
        Ok(Ok((s, up))) => {
            ctx.state::<RedisState>().server = Some(s);
            match up {
                Ok(()) => StepResult::pass("redis-server was killed and is up again (empty)"),
                Err(e) => StepResult::error(format!("restart after the outage: {e}")),
            }
        }
        _ => StepResult::error("the outage thread panicked"),
    }
}

fn on_server(s: &mut RedisServer, r: &RedisStep) -> StepResult {
    match r.action {
        RedisAction::Kill => {
            s.kill();
            StepResult::pass("killed")
        }
        RedisAction::Restart => match s.restart() {
            Ok(()) => StepResult::pass(format!("up again on port {}", s.port())),
            Err(e) => StepResult::error(format!("restart: {e}")),
        },
        RedisAction::Flush => match s
            .connection()
            .and_then(|mut c| redis::cmd("FLUSHALL").query::<()>(&mut c))
        {
            Ok(()) => StepResult::pass("every key deleted"),
            Err(e) => StepResult::error(format!("FLUSHALL: {e}")),
        },
        RedisAction::Damage => match r.damage {
            Some(d) => damage(s, d),
            None => StepResult::error("damage step without `damage`"),
        },
        RedisAction::Keys => keys(s, r),
        RedisAction::Start | RedisAction::Outage | RedisAction::AwaitOutage => {
            StepResult::error("handled above")
        }
    }
}

fn keys(s: &RedisServer, r: &RedisStep) -> StepResult {
    let names: Vec<String> = match s
        .connection()
        .and_then(|mut c| redis::cmd("KEYS").arg("*").query(&mut c))
    {
        Ok(k) => k,
        Err(e) => return StepResult::error(format!("KEYS: {e}")),
    };
    let n = names.len();
    let ok = r.expect_keys.is_none_or(|e| n == e) && r.min_keys.is_none_or(|m| n >= m);
    let mut o = StepResult::check(ok, format!("{n} keys"));
    o.excerpt = names.join("\n");
    o
}

/// Damage every stored value as `how`; fails when there is nothing to damage (a gate that
/// damages nothing proves nothing).
fn damage(s: &RedisServer, how: RedisDamage) -> StepResult {
    let mut c = match s.connection() {
        Ok(c) => c,
        Err(e) => return StepResult::error(format!("connect: {e}")),
    };
    let names: Vec<String> = match redis::cmd("KEYS").arg("*").query(&mut c) {
        Ok(k) => k,
        Err(e) => return StepResult::error(format!("KEYS: {e}")),
    };
    let mut done = Vec::new();
    for name in &names {
        let value: Vec<u8> = match redis::cmd("GET").arg(name).query(&mut c) {
            Ok(v) => v,
            Err(e) => return StepResult::error(format!("GET {name}: {e}")),
        };
        let Some(bad) = damaged(&value, how) else {
            return StepResult::error(format!("{name}: not a record this build can damage"));
        };
        if let Err(e) = redis::cmd("SET").arg(name).arg(bad).query::<()>(&mut c) {
            return StepResult::error(format!("SET {name}: {e}"));
        }
        done.push(name.clone());
    }
    let mut o = StepResult::check(
        !done.is_empty(),
        format!("{}: {} values damaged", how.as_str(), done.len()),
    );
    o.excerpt = done.join("\n");
    o
}

fn damaged(value: &[u8], how: RedisDamage) -> Option<Vec<u8>> {
    let payload = record::payload_range(value)?;
    // The content hash sits right before the payload length (4 bytes) and the payload.
    let hash_at = payload.start.checked_sub(4 + 32)?;
    let hash: [u8; 32] = value.get(hash_at..hash_at + 32)?.try_into().ok()?;
    let body = &value[payload.clone()];
    let tag = CacheKey::extractor_tag();
    Some(match how {
        RedisDamage::Truncate => value[..value.len() / 2].to_vec(),
        RedisDamage::Flip => {
            let mut v = value.to_vec();
            let digit = body.iter().position(u8::is_ascii_digit)?;
            v[payload.start + digit] ^= 0x01;
            v
        }
        RedisDamage::ForeignFormat => record::encode_raw(99, &tag, &hash, body),
        RedisDamage::OtherExtractor => record::encode_raw(1, "rp0.0.9-tsp0.24-x1", &hash, body),
    })
}
