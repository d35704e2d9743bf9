//! `trifecta`: parse → run → exit code. All logic lives in the library.

/// mimalloc instead of glibc malloc: parsing allocates and frees many small AST nodes per module
/// on every worker thread, where glibc's arenas cost about a quarter of a cold `ast index`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(trifecta::commands::main_with_args(std::env::args_os()));
}
