//! `quire`: the book-platform service and its operator tools. Everything lives in the library
//! (`src/lib.rs`), so tests and benchmarks start a node exactly as `quire serve` does.

/// The process allocator. Quire's hot paths allocate on one thread and free on another (rows
/// decoded on SQLite's worker threads are dropped on the runtime's; request bodies the other way
/// round), which glibc's per-thread arenas handle with locking, chunk consolidation and
/// fragmentation: profiles of a catching-up node showed a fifth of its time in `malloc`/`free`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    quire::cli_main()
}
