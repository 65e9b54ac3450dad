//! `wskit-bench`: see [`wskit_bench::cli::USAGE`].

fn main() -> std::process::ExitCode {
    wskit_bench::cli::main()
}
