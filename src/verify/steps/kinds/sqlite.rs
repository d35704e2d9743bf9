//! `kind = "sqlite"`.

use super::{StepFuture, StepKind, clip};
use crate::verify::process::{self};
use crate::verify::steps::in_process;
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;

/// The `kind` spelling.
pub const KIND: &str = "sqlite";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "sql = \"select 1\"";

/// `kind = "sqlite"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteStep {
    /// SQL batch run against `{db}` (the DB and its directory are created if missing).
    pub sql: String,
}

impl StepKind for SqliteStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn label(&self) -> String {
        clip(&self.sql)
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(sqlite(ctx, self)))
    }
}

/// `sqlite`: run SQL on the cache DB (creating it and its directory).
pub fn sqlite(ctx: &mut GateCtx, s: &SqliteStep) -> StepResult {
    let db = match ctx.db() {
        Ok(d) => d,
        Err(o) => return o,
    };
    if let Some(p) = db.parent()
        && let Err(e) = std::fs::create_dir_all(p)
    {
        return StepResult::error(format!("create {}: {e}", p.display()));
    }
    let cmd = in_process(format!(
        "sqlite3 {} {}",
        db.display(),
        process::quote(&s.sql)
    ));
    let res = rusqlite::Connection::open(&db).and_then(|c| c.execute_batch(&s.sql));
    match res {
        Ok(()) => StepResult {
            commands: vec![cmd],
            ..StepResult::pass("SQL applied")
        },
        Err(e) => StepResult {
            commands: vec![cmd],
            ..StepResult::error(format!("sqlite: {e}"))
        },
    }
}
