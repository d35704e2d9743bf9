//! `trifecta`: parse → run → exit code. All logic lives in the library.

fn main() {
    std::process::exit(trifecta::commands::main_with_args(std::env::args_os()));
}
