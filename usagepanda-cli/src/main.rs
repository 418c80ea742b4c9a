//! `usagepanda`: serve the proxy, check one request, test policy case files.

mod check;
mod config_file;
mod serve;
mod test_cases;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "usagepanda",
    version,
    about = "A policy engine and proxy for LLM API traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy.
    Serve(serve::Args),
    /// Check one request (and optionally the upstream's response) against a policy, offline.
    /// Prints the verdict as JSON; exits 0 for allow (auto-reply included), 1 for block,
    /// 2 for invalid input.
    Check(check::Args),
    /// Run policy test cases (`*.case.json` files under PATH), offline.
    /// Ends with `N passed, M failed`; exits non-zero on any failure or malformed case.
    Test {
        /// A case file or a directory searched recursively.
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(&args),
        Command::Test { path } => test_cases::run(&path),
    }
}
