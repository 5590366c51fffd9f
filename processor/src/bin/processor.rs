//! The `processor` binary. Today it manages the processor's network identity; the daemon that
//! follows a chain and talks to the coordinator is added on top of the same core.

use clap::{Parser, Subcommand};
use processor::crypto::Identity;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "Threshold-custody processor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new network identity (Ed25519) and print its public key, which the coordinator
    /// is configured with. Refuses to overwrite an existing file.
    NewIdentity {
        /// Where to write the secret key (hex, mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key of an identity file.
    ShowIdentity {
        #[arg(long)]
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::NewIdentity { out } => {
            let identity = Identity::generate(&mut rand_core::OsRng);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .map_err(|e| format!("creating {}: {e}", out.display()))?;
            let secret = zeroize::Zeroizing::new(hex::encode(&identity.secret_bytes()[..]));
            file.write_all(secret.as_bytes()).map_err(|e| format!("writing {}: {e}", out.display()))?;
            println!("{}", identity.peer_key());
            Ok(())
        }
        Command::ShowIdentity { path } => {
            println!("{}", read_identity(&path)?.peer_key());
            Ok(())
        }
    }
}

fn read_identity(path: &PathBuf) -> Result<Identity, String> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
    );
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), secret.as_mut())
        .map_err(|_| format!("{} does not hold a 32-byte hex secret key", path.display()))?;
    Ok(Identity::from_secret_bytes(&secret))
}
