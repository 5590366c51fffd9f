//! The `processor` daemon, built as this package's binary for its end-to-end tests.

fn main() -> std::process::ExitCode {
    processor::daemon::cli::main()
}
