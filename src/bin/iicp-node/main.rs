//! `iicp-node`: the IICP node binary.

mod cli;
mod consumer_cmd;
mod demo_cmd;
mod directory_cmd;
mod doctor_cmd;
mod echo;
mod native_args;
mod proxy_cmd;
mod relay_args;
mod serve_cmd;

use clap::Parser;
use cli::{Cli, Command, LogFormat};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// The node allocates many small, short-lived buffers per task (headers, JSON values,
/// the envelope); mimalloc serves them at a fraction of glibc malloc's cost
/// (BENCHMARKS.md, "Node cost per task"). Off with `--no-default-features`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: iicp_client::alloc::NodeAllocator = iicp_client::alloc::NodeAllocator;

/// Logs go to stderr. Servers (`directory`, `serve`, `proxy`) log at `info`
/// by default; the commands that print their own output (`chat`, `discover`,
/// `demo`, `doctor`) log only warnings.
/// `RUST_LOG` overrides both. A log line that cannot be written (stderr
/// closed: the reader of a pipe went away) is dropped: tracing-subscriber
/// would otherwise report it with `eprintln!`, which panics on the same
/// closed stderr and kills the task that logged (the signal task, so
/// SIGTERM stopped nothing).
fn init_tracing(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.worker_threads())
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("iicp-node: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command, on the runtime `main` built for it.
async fn run(cli: Cli) -> ExitCode {
    let default_level = match cli.command {
        Command::Directory(_) | Command::Serve(_) | Command::Proxy(_) => "info",
        Command::Chat(_) | Command::Discover(_) | Command::Demo(_) | Command::Doctor(_) => "warn",
    };
    init_tracing(cli.log_format, default_level);
    let result = match cli.command {
        Command::Directory(args) => directory_cmd::run(args).await,
        Command::Serve(args) => serve_cmd::run(*args).await,
        Command::Chat(args) => consumer_cmd::chat(args).await,
        Command::Discover(args) => consumer_cmd::discover(args).await,
        Command::Demo(args) => demo_cmd::run(args).await,
        Command::Doctor(args) => doctor_cmd::run(args).await,
        Command::Proxy(args) => proxy_cmd::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iicp-node: {e}");
            ExitCode::FAILURE
        }
    }
}
