//! `iicp-node`: the IICP node binary.

mod cli;
mod consumer_cmd;
mod directory_cmd;
mod echo;
mod serve_cmd;

use clap::Parser;
use cli::{Cli, Command, LogFormat};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Directory(args) => directory_cmd::run(args).await,
        Command::Serve(args) => serve_cmd::run(*args).await,
        Command::Chat(args) => consumer_cmd::chat(args).await,
        Command::Discover(args) => consumer_cmd::discover(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iicp-node: {e}");
            ExitCode::FAILURE
        }
    }
}
