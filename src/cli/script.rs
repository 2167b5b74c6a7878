//! `hotspot-edge routeros-script`: the RouterOS preparation script, and its checker.

use super::args::RouterosScriptArgs;
use super::exit::*;
use crate::config;

pub(super) fn routeros_script(a: &RouterosScriptArgs, config: &config::Config) -> i32 {
    use crate::routeros::setup;
    if let Some(f) = &a.check {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}: {e}", f.display());
                return EXIT_USAGE;
            }
        };
        return match setup::check(&text) {
            Ok(n) => {
                println!("ok: {n} commands");
                EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {}: {e}", f.display());
                EXIT_REFUSED
            }
        };
    }
    let Some(daemon_address) = a.daemon_address else {
        eprintln!("error: --daemon-address is required");
        return EXIT_USAGE;
    };
    let opts = setup::ScriptOptions {
        daemon_address,
        include_secrets: a.include_secrets,
    };
    match setup::script(config, &opts) {
        Ok(s) => {
            print!("{s}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_BAD_CONFIG
        }
    }
}
