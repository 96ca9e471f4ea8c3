use std::process::ExitCode;

use clap::Parser;
use videocall_cli::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("videocall-cli: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Stream(args) => videocall_cli::stream::run(args).await,
            Command::Receive(args) => videocall_cli::receive::run(args).await,
            Command::Chat(args) => videocall_cli::chat::run(args).await,
            Command::Info(args) => videocall_cli::info::run(args),
            Command::Meeting(args) => videocall_cli::meeting::run(args).await,
        }
    });
    // Background tasks (a transport still closing) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("videocall-cli: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
