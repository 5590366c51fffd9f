//! `sim`: runs seeds of the simulation and summarises them. Built with `--cfg madsim`
//! (`scripts/sim.sh` does that); a normal build only says so.

#[cfg(madsim)]
mod cli;

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!("error: the simulation runs only in a madsim build; run it with scripts/sim.sh [ARGS]");
    std::process::ExitCode::from(2)
}
