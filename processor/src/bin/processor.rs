//! The `processor` binary (see [`processor::daemon::cli`]).

fn main() -> std::process::ExitCode {
    processor::daemon::cli::main()
}
