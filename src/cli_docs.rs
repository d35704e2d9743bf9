//! Shell completions and man pages, generated from a binary's clap definition (`clap_complete`,
//! `clap_mangen`), so they can never drift from the flags the binary really accepts. Shared by
//! `trifecta completions|man` and `trifecta-verify completions|man`.

use crate::output::{StdoutError, write_stdout};
use std::io;
use std::path::Path;

/// The completion script of `cmd` for `shell`, as bytes.
pub fn completions(mut cmd: clap::Command, shell: clap_complete::Shell) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// Print the completion script of `cmd` for `shell` on stdout.
pub fn print_completions(
    cmd: clap::Command,
    shell: clap_complete::Shell,
) -> Result<(), StdoutError> {
    write_stdout(&completions(cmd, shell))
}

/// The man page (roff) of `cmd` itself, its subcommands listed.
pub fn man_page(cmd: clap::Command) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    Ok(out)
}

/// Write `<name>.1` for `cmd` and `<name>-<sub>.1` for every visible (nested) subcommand into
/// `dir`, created if missing; returns the file names written, sorted.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut names = Vec::new();
    let mut built = cmd.clone().disable_help_subcommand(true);
    built.build();
    page_names(&built, &mut names);
    clap_mangen::generate_to(cmd, dir)?;
    names.sort();
    Ok(names)
}

/// The file names `clap_mangen::generate_to` gives the pages of `cmd` and its subcommands.
fn page_names(cmd: &clap::Command, out: &mut Vec<String>) {
    out.push(clap_mangen::Man::new(cmd.clone()).get_filename());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        page_names(sub, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("demo")
            .about("A demo.")
            .subcommand(clap::Command::new("run").about("Run it."))
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn completions_name_the_binary_and_its_subcommands() {
        let bash = String::from_utf8(completions(demo(), clap_complete::Shell::Bash)).unwrap();
        assert!(bash.contains("_demo()") && bash.contains("run"), "{bash}");
    }

    #[test]
    fn man_pages_cover_visible_subcommands_only() {
        let d = tempfile::tempdir().unwrap();
        let files = write_man_pages(demo(), d.path()).unwrap();
        assert_eq!(files, ["demo-run.1", "demo.1"]);
        assert!(!d.path().join("demo-secret.1").exists());
        let page = std::fs::read_to_string(d.path().join("demo-run.1")).unwrap();
        assert!(page.contains(".TH demo-run"), "{page}");
    }
}
