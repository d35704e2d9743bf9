//! `kind = "integrity"`.

use super::{StepFuture, StepKind};
use crate::verify::excerpt::excerpt;
use crate::verify::steps::in_process;
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;

/// The `kind` spelling.
pub const KIND: &str = "integrity";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "";

/// `kind = "integrity"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityStep {
    /// Expected result of `PRAGMA integrity_check`.
    #[serde(default = "default_ok")]
    pub expect: String,
    /// Pass when there is no database at all. Only for crash gates: a writer killed before
    /// the atomic rename that publishes a new database leaves none, a consistent outcome.
    #[serde(default)]
    pub missing_ok: bool,
}

fn default_ok() -> String {
    "ok".to_string()
}

impl StepKind for IntegrityStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn is_check(&self) -> bool {
        true
    }

    fn runs_after_kill(&self) -> bool {
        true
    }

    fn label(&self) -> String {
        "PRAGMA integrity_check".into()
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(integrity(ctx, self)))
    }
}

/// `integrity`: `PRAGMA integrity_check` on the cache DB.
pub fn integrity(ctx: &mut GateCtx, s: &IntegrityStep) -> StepResult {
    let db = match ctx.db() {
        Ok(d) => d,
        Err(o) => return o,
    };
    let cmd = in_process(format!("sqlite3 {} 'PRAGMA integrity_check'", db.display()));
    if !db.exists() && s.missing_ok {
        let mut out = StepResult::pass("no database: nothing was published before the crash");
        out.commands = vec![cmd];
        out.excerpt = format!(
            "no database at {} (missing_ok: nothing was published)",
            db.display()
        );
        return out;
    }
    if !db.is_file() {
        return StepResult {
            commands: vec![cmd],
            ..StepResult::fail(format!("no database at {}", db.display()))
        };
    }
    use rusqlite::OpenFlags;
    let res = rusqlite::Connection::open_with_flags(
        &db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|c| {
        let mut st = c.prepare("PRAGMA integrity_check")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<Vec<_>, _>>()
    });
    let mut out = match res {
        Ok(rows) => {
            let got = rows.join("\n");
            StepResult::check(
                got == s.expect,
                format!(
                    "integrity_check = `{}` (expected `{}`)",
                    excerpt(&got, 5, 500, false),
                    s.expect
                ),
            )
        }
        Err(e) => StepResult::fail(format!("integrity_check could not run: {e}")),
    };
    out.commands = vec![cmd];
    out
}
