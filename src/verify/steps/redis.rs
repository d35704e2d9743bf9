//! The `redis` step kind: the gate's own `redis-server` (see [`crate::verify::redis_server`]),
//! so a gate can share one remote cache between two "machines", take it away in the middle of
//! a storm, bring it back, and damage what it stores the ways a real fleet meets.
//!
//! Actions: `start` (free port, `{redis}` expands to its URL), `kill`, `restart`, `outage` (kill
//! and restart in the background while the next steps run; `await-outage` joins it), `damage`
//! (every stored value: truncated, bit-flipped, foreign format, other extractor), `flush`, and
//! the one check, `keys` (how many keys the server holds: proves what was, or was not, written).

use super::{GateCtx, Outcome, in_process};
use crate::cache::CacheKey;
use crate::cache::remote::record;
use crate::verify::redis_server::{self, RedisServer};
use crate::verify::spec::{RedisAction, RedisDamage, RedisStep};
use std::thread::JoinHandle;
use std::time::Duration;

/// The server of one gate: running here, or inside a background outage.
#[derive(Default)]
pub struct RedisState {
    server: Option<RedisServer>,
    outage: Option<JoinHandle<(RedisServer, Result<(), String>)>>,
    url: Option<String>,
}

impl RedisState {
    /// `{redis}`: the server's URL once started (stable across kills and restarts).
    pub fn url(&self) -> Option<String> {
        self.url.clone()
    }
}

/// Short label for reports.
pub fn label(r: &RedisStep) -> String {
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
pub async fn exec(ctx: &mut GateCtx, r: &RedisStep, index: usize) -> Outcome {
    let mut out = match r.action {
        RedisAction::Start => start(ctx),
        RedisAction::AwaitOutage => await_outage(ctx).await,
        RedisAction::Outage => outage(ctx, r),
        _ => match ctx.redis.server.as_mut() {
            None => Outcome::error("no redis-server running: a `start` step must come first"),
            Some(s) => on_server(s, r),
        },
    };
    let pid = ctx.redis.server.as_ref().and_then(RedisServer::pid);
    out.commands = vec![in_process(format!("redis {} (pid {pid:?})", label(r)))];
    if let Some(log) = ctx.log(&format!("step-{index}-redis.log"), &out.detail) {
        out.logs.push(log);
    }
    out
}

fn start(ctx: &mut GateCtx) -> Outcome {
    if ctx.redis.server.is_some() || ctx.redis.outage.is_some() {
        return Outcome::error("redis-server already started in this gate");
    }
    if !redis_server::available() {
        return Outcome::error("redis-server not found (Debian: apt-get install redis-server)");
    }
    match RedisServer::start(Some(ctx.log_dir.join("redis-server.log"))) {
        Ok(s) => {
            let detail = format!("redis-server pid {:?} on 127.0.0.1:{}", s.pid(), s.port());
            ctx.redis.url = Some(s.url());
            ctx.redis.server = Some(s);
            Outcome::pass(detail)
        }
        Err(e) => Outcome::error(format!("start redis-server: {e}")),
    }
}

fn outage(ctx: &mut GateCtx, r: &RedisStep) -> Outcome {
    let Some(mut s) = ctx.redis.server.take() else {
        return Outcome::error("no redis-server running: a `start` step must come first");
    };
    let (after, down) = (
        Duration::from_millis(r.down_after_ms),
        Duration::from_millis(r.down_for_ms),
    );
    // A thread, not a task: the kill and the restart must happen on time while the storm's
    // tasks keep the runtime busy. It owns the server, so the server dies with it at worst.
    ctx.redis.outage = Some(std::thread::spawn(move || {
        std::thread::sleep(after);
        s.kill();
        std::thread::sleep(down);
        let up = s.restart().map_err(|e| e.to_string());
        (s, up)
    }));
    Outcome::pass(format!("outage scheduled: down at +{after:?} for {down:?}"))
}

async fn await_outage(ctx: &mut GateCtx) -> Outcome {
    let Some(h) = ctx.redis.outage.take() else {
        return Outcome::error("no outage in progress");
    };
    let joined = tokio::task::spawn_blocking(move || h.join()).await;
    match joined {
        Ok(Ok((s, up))) => {
            ctx.redis.server = Some(s);
            match up {
                Ok(()) => Outcome::pass("redis-server was killed and is up again (empty)"),
                Err(e) => Outcome::error(format!("restart after the outage: {e}")),
            }
        }
        _ => Outcome::error("the outage thread panicked"),
    }
}

fn on_server(s: &mut RedisServer, r: &RedisStep) -> Outcome {
    match r.action {
        RedisAction::Kill => {
            s.kill();
            Outcome::pass("killed")
        }
        RedisAction::Restart => match s.restart() {
            Ok(()) => Outcome::pass(format!("up again on port {}", s.port())),
            Err(e) => Outcome::error(format!("restart: {e}")),
        },
        RedisAction::Flush => match s
            .connection()
            .and_then(|mut c| redis::cmd("FLUSHALL").query::<()>(&mut c))
        {
            Ok(()) => Outcome::pass("every key deleted"),
            Err(e) => Outcome::error(format!("FLUSHALL: {e}")),
        },
        RedisAction::Damage => match r.damage {
            Some(d) => damage(s, d),
            None => Outcome::error("damage step without `damage`"),
        },
        RedisAction::Keys => keys(s, r),
        RedisAction::Start | RedisAction::Outage | RedisAction::AwaitOutage => {
            Outcome::error("handled above")
        }
    }
}

fn keys(s: &RedisServer, r: &RedisStep) -> Outcome {
    let names: Vec<String> = match s
        .connection()
        .and_then(|mut c| redis::cmd("KEYS").arg("*").query(&mut c))
    {
        Ok(k) => k,
        Err(e) => return Outcome::error(format!("KEYS: {e}")),
    };
    let n = names.len();
    let ok = r.expect_keys.is_none_or(|e| n == e) && r.min_keys.is_none_or(|m| n >= m);
    let mut o = Outcome::check(ok, format!("{n} keys"));
    o.excerpt = names.join("\n");
    o
}

/// Damage every stored value as `how`; fails when there is nothing to damage (a gate that
/// damages nothing proves nothing).
fn damage(s: &RedisServer, how: RedisDamage) -> Outcome {
    let mut c = match s.connection() {
        Ok(c) => c,
        Err(e) => return Outcome::error(format!("connect: {e}")),
    };
    let names: Vec<String> = match redis::cmd("KEYS").arg("*").query(&mut c) {
        Ok(k) => k,
        Err(e) => return Outcome::error(format!("KEYS: {e}")),
    };
    let mut done = Vec::new();
    for name in &names {
        let value: Vec<u8> = match redis::cmd("GET").arg(name).query(&mut c) {
            Ok(v) => v,
            Err(e) => return Outcome::error(format!("GET {name}: {e}")),
        };
        let Some(bad) = damaged(&value, how) else {
            return Outcome::error(format!("{name}: not a record this build can damage"));
        };
        if let Err(e) = redis::cmd("SET").arg(name).arg(bad).query::<()>(&mut c) {
            return Outcome::error(format!("SET {name}: {e}"));
        }
        done.push(name.clone());
    }
    let mut o = Outcome::check(
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
