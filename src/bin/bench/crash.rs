//! `crash-child`: applies payments and reports each commit, for the SIGKILL test
//! (tests/crash.rs).

use super::*;

pub fn crash_child(db: &Path, count: usize, start: usize) {
    let (mut store, engine) = open_with_plan(db);
    let stdout = std::io::stdout();
    for i in start..count {
        let r = store.apply(
            &engine,
            &SystemClock,
            &mut OsEntropy,
            Source::Cli,
            None,
            &payment(i + 1, true),
        );
        match r {
            Ok(_) => {
                let mut out = stdout.lock();
                let _ = writeln!(out, "committed P{:07}", i + 1);
                let _ = out.flush();
            }
            Err(e) => {
                eprintln!("error at P{:07}: {e}", i + 1);
                std::process::exit(1);
            }
        }
    }
}
