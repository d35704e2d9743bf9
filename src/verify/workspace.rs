//! Workspaces a gate runs in: a private copy of a scenario's fixture segment, and clean git
//! worktrees of a revision (git2, no network, no shelling out to git).
//!
//! A worktree is made the way the walkthrough's Gate 2 did it (`git worktree add /tmp/… REV`):
//! registered in the repository, checked out detached at the commit, and removed again (files,
//! administrative entry and the helper branch libgit2 creates) unless `--keep-worktrees`.

use git2::{Repository, WorktreeAddOptions, WorktreePruneOptions};
use std::path::{Path, PathBuf};

/// Copy the directory tree `from` into `to` (created). Symlinks are copied as links; nothing
/// outside `from` is followed. FIFOs, sockets and devices are skipped: opening a FIFO to copy
/// it would block forever, and a device's "content" is not a file's (hostile segments have them).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            std::os::unix::fs::symlink(target, dest)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

/// The commit and cleanliness of a checkout, for the Evidence Header.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepoState {
    /// Full SHA of HEAD.
    pub commit: String,
    /// True when tracked files differ from HEAD or untracked, non-ignored files exist.
    pub dirty: bool,
    /// Paths that make it dirty (at most 20, for the report).
    pub dirty_paths: Vec<String>,
}

/// Inspect the repository containing `dir`.
pub fn repo_state(dir: &Path) -> Result<RepoState, String> {
    let repo = Repository::discover(dir).map_err(|e| format!("not a git repository: {e}"))?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|e| format!("no HEAD commit: {e}"))?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).include_ignored(false);
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(|e| format!("git status failed: {e}"))?;
    let dirty_paths: Vec<String> = statuses
        .iter()
        .filter(|s| s.status() != git2::Status::CURRENT)
        .filter_map(|s| s.path().ok().map(str::to_string))
        .take(20)
        .collect();
    Ok(RepoState {
        commit: head.id().to_string(),
        dirty: !dirty_paths.is_empty(),
        dirty_paths,
    })
}

/// Top-level directory of the repository containing `dir`.
pub fn repo_root(dir: &Path) -> Result<PathBuf, String> {
    let repo = Repository::discover(dir).map_err(|e| format!("not a git repository: {e}"))?;
    repo.workdir()
        .map(Path::to_path_buf)
        .ok_or_else(|| "bare repository has no checkout".to_string())
}

/// A worktree we created; [`Worktree::remove`] undoes everything.
#[derive(Debug)]
pub struct Worktree {
    /// Checkout directory.
    pub path: PathBuf,
    /// Resolved commit.
    pub commit: String,
    repo_dir: PathBuf,
    name: String,
}

/// Create a detached worktree of `rev` (anything `git rev-parse` accepts) at `path` (must not
/// exist). `name` must be unique among the repository's worktrees.
pub fn add_worktree(
    repo_dir: &Path,
    rev: &str,
    path: &Path,
    name: &str,
) -> Result<Worktree, String> {
    let repo = Repository::discover(repo_dir).map_err(|e| format!("not a git repository: {e}"))?;
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| format!("cannot resolve revision `{rev}`: {e}"))?;
    // libgit2 checks out a branch named after the worktree; make it point at the commit first.
    let branch = repo
        .branch(name, &commit, true)
        .map_err(|e| format!("cannot create helper branch: {e}"))?;
    let mut opts = WorktreeAddOptions::new();
    opts.reference(Some(branch.get()));
    let wt = repo
        .worktree(name, path, Some(&opts))
        .map_err(|e| format!("git worktree add failed: {e}"))?;
    let wt_repo = Repository::open_from_worktree(&wt).map_err(|e| format!("open worktree: {e}"))?;
    // Detach so the helper branch can be deleted and nothing is committed to it by accident.
    wt_repo
        .set_head_detached(commit.id())
        .map_err(|e| format!("detach worktree HEAD: {e}"))?;
    let got = wt_repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|e| format!("worktree HEAD: {e}"))?
        .id();
    if got != commit.id() {
        return Err(format!("worktree HEAD {got} != requested {}", commit.id()));
    }
    let out = Worktree {
        path: path.to_path_buf(),
        commit: commit.id().to_string(),
        repo_dir: repo_dir.to_path_buf(),
        name: name.to_string(),
    };
    drop(branch);
    if let Ok(mut b) = repo.find_branch(name, git2::BranchType::Local) {
        let _ = b.delete();
    }
    Ok(out)
}

impl Worktree {
    /// Delete the checkout and prune its administrative entry. Best effort, reports failures.
    pub fn remove(&self) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(&self.path);
        let repo = Repository::discover(&self.repo_dir).map_err(|e| e.to_string())?;
        if let Ok(wt) = repo.find_worktree(&self.name) {
            let mut po = WorktreePruneOptions::new();
            po.valid(true).working_tree(true);
            wt.prune(Some(&mut po)).map_err(|e| format!("prune: {e}"))?;
        }
        if let Ok(mut b) = repo.find_branch(&self.name, git2::BranchType::Local) {
            let _ = b.delete();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_repo(dir: &Path) -> git2::Oid {
        let repo = Repository::init(dir).unwrap();
        std::fs::write(dir.join("a.txt"), "hello").unwrap();
        let mut idx = repo.index().unwrap();
        idx.add_path(Path::new("a.txt")).unwrap();
        idx.write().unwrap();
        let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "c1", &tree, &[])
            .unwrap()
    }

    #[test]
    fn worktree_roundtrip_and_dirty_flag() {
        let d = tempfile::tempdir().unwrap();
        let repo_dir = d.path().join("repo");
        std::fs::create_dir(&repo_dir).unwrap();
        let oid = init_repo(&repo_dir);
        let st = repo_state(&repo_dir).unwrap();
        assert_eq!(st.commit, oid.to_string());
        assert!(!st.dirty);
        std::fs::write(repo_dir.join("a.txt"), "changed").unwrap();
        assert!(repo_state(&repo_dir).unwrap().dirty);

        let wt_path = d.path().join("wt");
        let wt = add_worktree(&repo_dir, "HEAD", &wt_path, "tv-test").unwrap();
        assert_eq!(wt.commit, oid.to_string());
        // The worktree has the committed content, not the dirty edit.
        assert_eq!(
            std::fs::read_to_string(wt_path.join("a.txt")).unwrap(),
            "hello"
        );
        wt.remove().unwrap();
        assert!(!wt_path.exists());
        let repo = Repository::open(&repo_dir).unwrap();
        assert_eq!(repo.worktrees().unwrap().len(), 0);
        assert!(
            repo.find_branch("tv-test", git2::BranchType::Local)
                .is_err()
        );
    }

    #[test]
    fn bad_revision_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        init_repo(d.path());
        let e = add_worktree(d.path(), "no-such-rev", &d.path().join("x"), "n").unwrap_err();
        assert!(e.contains("no-such-rev"), "{e}");
    }
}
