//! The command line: `hotspot-edge [-c PATH] [--json] COMMAND`. `args` is its shape,
//! `dispatch` the store commands, `render` the output, `sign` and `script` the two generators,
//! `exit` every exit code, `demo` the self-contained demo.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;

mod args;
#[cfg(feature = "demo")]
mod demo;
mod dispatch;
pub mod exit;
mod render;
mod script;
mod sign;

pub use args::*;
use dispatch::{CliError, Ctx};
pub use exit::*;
use script::routeros_script;
use sign::sign_command;

use crate::app;
use crate::clock::SystemClock;
use crate::config;
use crate::store::{ApplyError, Store};

/// Parses `args` and runs; returns the process exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    #[cfg(feature = "demo")]
    if let Cmd::Demo(a) = &cli.command {
        return demo::demo(a.seconds);
    }
    if let Cmd::SignCommand(a) = &cli.command {
        if a.site.is_some() && a.key_file.is_some() {
            return sign_command(a, None);
        }
    }
    let loaded = match config::load(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_BAD_CONFIG;
        }
    };
    // Only `run` and `check-config` read the files the config names (secrets, CA bundles).
    let settings = match &cli.command {
        Cmd::CheckConfig | Cmd::Run => {
            match crate::daemon::Settings::resolve(loaded.config.clone()) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("{}", loaded.locate(e.span, e.message));
                    return EXIT_BAD_CONFIG;
                }
            }
        }
        _ => None,
    };
    if let (Cmd::CheckConfig, Some(s)) = (&cli.command, &settings) {
        println!("ok");
        for w in loaded.warnings.iter().chain(&s.warnings) {
            println!("warning: {w}");
        }
        return EXIT_OK;
    }
    let config = loaded.config;
    if let Cmd::RouterosScript(a) = &cli.command {
        return routeros_script(a, &config);
    }
    if let Cmd::SignCommand(a) = &cli.command {
        return sign_command(a, Some(&config));
    }
    if let (Cmd::Run, Some(s)) = (&cli.command, settings) {
        for w in loaded.warnings.iter().chain(&s.warnings) {
            eprintln!("warning: {}: {w}", path.display());
        }
        return run_daemon(s);
    }
    let clock = SystemClock;
    let mut store = match app::open_store(&config, &clock, cli.command.writes()) {
        Ok(s) => s,
        Err(ApplyError::Store(e)) if !cli.command.writes() && e.is_unwritable_open() => {
            // A full disk must not blind the operator: read the file as it is.
            match Store::open_snapshot(&config.store.path, app::open_options(&config, false).policy)
            {
                Ok(s) => {
                    eprintln!("warning: {e}; read without the write-ahead log (free some space: the latest changes of a running daemon may be missing)");
                    s
                }
                Err(_) => {
                    eprintln!("error: {e}");
                    return EXIT_STORE;
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STORE;
        }
    };
    let mut ctx = Ctx {
        config: &config,
        store: &mut store,
        clock: &clock,
        json: cli.json,
        out: std::io::stdout().lock(),
    };
    match ctx.dispatch(&cli.command) {
        Ok(()) => EXIT_OK,
        Err(CliError::Refused(msg)) => {
            let _ = ctx.out.flush();
            eprintln!("error: {msg}");
            EXIT_REFUSED
        }
        Err(CliError::Store(msg)) => {
            eprintln!("error: {msg}");
            EXIT_STORE
        }
    }
}

fn run_daemon(settings: crate::daemon::Settings) -> i32 {
    crate::logging::init(&settings.config.log);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_OS_ERROR;
        }
    };
    match rt.block_on(crate::daemon::run_with(
        settings,
        Arc::new(SystemClock),
        crate::daemon::shutdown_signal(),
        |_| {},
    )) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!(error = %e, "stopped on error");
            eprintln!("error: {e}");
            match e {
                crate::daemon::RunError::Config(_) => EXIT_BAD_CONFIG,
                _ => EXIT_STORE,
            }
        }
    }
}

/// Used by the demo to run the CLI's own code paths against a config file.
pub fn run_args(config: &Path, args: &[&str]) -> i32 {
    let mut v: Vec<OsString> = vec!["hotspot-edge".into(), "-c".into(), config.into()];
    v.extend(args.iter().map(OsString::from));
    main(v)
}
