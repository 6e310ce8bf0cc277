//! `quire`: the book-platform service and its operator tools. Everything lives in the library
//! (`src/lib.rs`), so tests and benchmarks start a node exactly as `quire serve` does.

fn main() -> std::process::ExitCode {
    quire::cli_main()
}
