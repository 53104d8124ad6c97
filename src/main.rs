//! The `acp` binary: parse the command line, set up logging, run the command,
//! and turn any error into a message and an exit code (0 ok, 1 failure,
//! 2 bad usage or input).

use std::process::ExitCode;

use clap::Parser;

mod cli;

use cli::{Cli, Command};

fn main() -> ExitCode {
    // Everything acp creates (the store, inboxes, backups, locks, restores
    // before their recorded modes are set) is for its owner only.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    let default_level = match (cli.verbose, &cli.command) {
        // serenity narrates every shard step at info; keep its warnings.
        (0, Command::Run { .. } | Command::Bot) | (1, _) => "info,serenity=warn,poise=warn",
        // One-shot commands print what happened; their warnings would say
        // it twice.
        (0, _) => "error",
        _ => "debug",
    };
    if let Err(why) = cli::logging::init(default_level, cli.log_file.as_deref()) {
        eprintln!("error: {why}");
        return ExitCode::from(cli::EXIT_USAGE);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_FAILURE);
        }
    };
    let json_out = cli.json;
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(err) if cli::closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let code = cli::exit_code(&err);
            let text = cli::error_text(&err);
            if json_out {
                // Scripts read stdout: the error is JSON there too.
                println!("{}", serde_json::json!({"error": text, "code": code}));
            } else {
                eprintln!("error: {text}");
            }
            ExitCode::from(code)
        }
    }
}
