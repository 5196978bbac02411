//! The `containerd-registry` command: `serve` runs the registry, `check` opens the same files and
//! containerd connection and reports what the registry would use.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use containerd_registry::{check, config, logging, server};

#[derive(Parser)]
#[command(version, about = "An OCI Distribution registry whose storage driver is containerd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry.
    Serve {
        /// Docker Distribution style config.yml; without it, defaults and REGISTRY_* variables apply.
        config: Option<PathBuf>,
    },
    /// Open the TLS and auth files, connect to containerd and report what `serve` would use,
    /// without listening; fails where `serve` would fail before listening.
    Check {
        /// Docker Distribution style config.yml.
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (Command::Serve { config: path } | Command::Check { config: path }) = &cli.command;

    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match config::load(path.as_deref(), &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("containerd-registry: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("containerd-registry: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    let result = match cli.command {
        Command::Serve { .. } => {
            logging::init(&config.log);
            runtime.block_on(server::serve(config))
        }
        Command::Check { .. } => runtime.block_on(check::check(&config, &mut std::io::stdout())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("containerd-registry: {message}");
            ExitCode::FAILURE
        }
    }
}
