//! mxwatch binary: parse flags -> settings -> run -> exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use mxwatch::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MXWATCH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_target(false)
        // Colour codes only for a person at a terminal, never in a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Read(args) => mxwatch::run::read(&args),
        Command::Live(args) => mxwatch::run::live(&args),
        #[cfg(feature = "kafka")]
        Command::Detect(args) => mxwatch::run::detect::detect(&args),
        #[cfg(not(feature = "kafka"))]
        Command::Detect(_) => Err(anyhow::anyhow!(
            "detect: this mxwatch was built without the kafka feature"
        )),
        Command::Config(args) => mxwatch::run::config(&args),
        Command::Report(args) => mxwatch::report::report(&args),
        Command::Completions { shell } => mxwatch::run::completions(shell),
        Command::Man => mxwatch::run::man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if mxwatch::run::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mxwatch: {e:#}");
            ExitCode::from(1)
        }
    }
}
