//! `kind = "edit"`.

use super::{StepFuture, StepKind, ValidateCx};
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;

/// The `kind` spelling.
pub const KIND: &str = "edit";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "file = \"a.py\"\naction = \"touch\"";

/// What `edit` does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EditAction {
    /// Append `text`.
    Append,
    /// Rewrite the same bytes (new mtime, same content).
    Touch,
    /// Replace the whole file with `text`.
    Replace,
    /// Remove the file.
    Delete,
}

/// `kind = "edit"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditStep {
    /// Segment-relative file.
    pub file: String,
    /// What to do.
    pub action: EditAction,
    /// Text for append/replace.
    #[serde(default)]
    pub text: String,
}

impl EditAction {
    /// `append`, `touch`, `replace` or `delete`, as spelled in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            EditAction::Append => "append",
            EditAction::Touch => "touch",
            EditAction::Replace => "replace",
            EditAction::Delete => "delete",
        }
    }
}

impl StepKind for EditStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn label(&self) -> String {
        format!("{} {}", self.action.as_str(), self.file)
    }

    fn validate(&self, _cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if self.file.contains("..") || std::path::Path::new(&self.file).is_absolute() {
            err("file", "file must be segment-relative without `..`".into());
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(edit(ctx, self)))
    }
}

/// `edit`: change a segment source file.
pub fn edit(ctx: &mut GateCtx, s: &EditStep) -> StepResult {
    let seg = match ctx.segment() {
        Ok(s) => s.to_path_buf(),
        Err(o) => return o,
    };
    let path = seg.join(&s.file);
    let res = match s.action {
        EditAction::Append => std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, s.text.as_bytes())),
        EditAction::Touch => std::fs::read(&path).and_then(|b| std::fs::write(&path, b)),
        EditAction::Replace => std::fs::write(&path, &s.text),
        EditAction::Delete => std::fs::remove_file(&path),
    };
    match res {
        Ok(()) => StepResult::pass(format!("{} {}", s.action.as_str(), s.file)),
        Err(e) => StepResult::error(format!("edit {}: {e}", s.file)),
    }
}
