//! `trifecta-verify`: parse → run gates → exit code. All logic lives in `trifecta::verify`.

fn main() {
    std::process::exit(trifecta::verify::main_with_args(
        std::env::args_os().collect(),
    ));
}
