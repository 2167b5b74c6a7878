//! The RouterOS API simulator as a program, for trying hotspot-edge without a router:
//!
//!   hotspot-edge-routeros-sim --listen 127.0.0.1:8728 --user hotspot-edge --password secret
//!
//! It serves the hotspot menus hotspot-edge uses (docs/routeros-simulator.md). With
//! `--traffic-kbps N` every logged-in device downloads N kB/s, so data plans run out.

use std::time::Duration;

use clap::Parser;
use hotspot_edge::routeros::sim::model::PrintForms;
use hotspot_edge::routeros::sim::{Model, Simulator};

#[derive(Parser)]
#[command(about = "A RouterOS API simulator (hotspot menus) for hotspot-edge")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8728")]
    listen: String,
    #[arg(long, default_value = "hotspot-edge")]
    user: String,
    #[arg(long)]
    password: String,
    /// Put the `.tag` word first in replies (real routers put it last).
    #[arg(long)]
    tag_first: bool,
    /// Answer empty prints with `!empty` (RouterOS 7.18+).
    #[arg(long)]
    empty_reply: bool,
    /// Download rate of every logged-in device, kB/s (0: no traffic).
    #[arg(long, default_value_t = 0)]
    traffic_kbps: u64,
    /// Print `login USER MS` / `logout USER MS` (wall clock) on stdout (benchmarks).
    #[arg(long)]
    log_events: bool,
    /// How values are printed: `7` (RouterOS 7: `true`/`false`, `1d`, defaults left out) or
    /// `6` (older forms: `yes`/`no`, `1d00:00:00`, defaults printed).
    #[arg(long, default_value = "7", value_parser = parse_forms)]
    print_forms: PrintForms,
    /// Exit when standard input closes: a parent that dies (even by abort) takes the simulator
    /// with it.
    #[arg(long)]
    exit_with_stdin: bool,
}

fn parse_forms(t: &str) -> Result<PrintForms, String> {
    PrintForms::parse(t).ok_or_else(|| format!("{t:?}: expected 7 or 6"))
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let mut model = Model {
            empty_reply: args.empty_reply,
            event_log: args.log_events.then(Vec::new),
            ..Model::with_forms(args.print_forms)
        };
        model.add_api_user(&args.user, &args.password, "hotspot-edge");
        let sim = match Simulator::start(&args.listen, model).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                std::process::exit(71);
            }
        };
        sim.set_tag_first(args.tag_first);
        eprintln!("RouterOS simulator on {} (API user {:?})", sim.addr, args.user);
        let (parent_gone_tx, mut parent_gone) = tokio::sync::oneshot::channel::<()>();
        // Held for the program's life unless the stdin watcher takes it.
        let mut _sender = Some(parent_gone_tx);
        if args.exit_with_stdin {
            let tx = _sender.take();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut sink = [0u8; 64];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                if let Some(tx) = tx {
                    let _ = tx.send(());
                }
            });
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut flush = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = &mut parent_gone => return,
                _ = flush.tick() => {
                    let events: Vec<_> = sim.model().event_log.as_mut().map(std::mem::take).unwrap_or_default();
                    if !events.is_empty() {
                        use std::io::Write;
                        let mut out = std::io::stdout().lock();
                        for (kind, user, ms) in events {
                            let _ = writeln!(out, "{kind} {user} {ms}");
                        }
                        let _ = out.flush();
                    }
                }
                _ = tick.tick() => {
                    let mut m = sim.model();
                    m.advance(1000);
                    if args.traffic_kbps > 0 {
                        m.traffic_all(args.traffic_kbps * 100, args.traffic_kbps * 1000);
                    }
                }
            }
        }
    });
}
