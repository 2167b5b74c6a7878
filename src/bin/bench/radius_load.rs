//! `radius-load`: Access-Request throughput and latency of the daemon's RADIUS server against
//! FreeRADIUS 3.2 (Debian `freeradius`, its packaged configuration, the `files` module holding
//! the same users with the same reply attributes), one load generator, one run. Both servers
//! are child processes alive for the whole run; each is loaded twice, alternately.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

use hotspot_edge::clock::SystemClock;
use hotspot_edge::engine::command::Source;
use hotspot_edge::engine::command::{CreateUserArgs, PlanArgs};
use hotspot_edge::engine::{Command, OsEntropy};
use hotspot_edge::radius::packet::{self, attr, Builder, Packet};
use tokio::net::UdpSocket;

use super::{cpu_ms, rss_kib, Killed};

const SECRET: &str = "bench-radius-secret-0123456789";

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind")
        .port()
}

/// Our database: `users` users of a plan with a rate limit, data cap and idle timeout.
fn site(db: &Path, users: usize) {
    let mut store = super::open(db, false);
    let engine = super::engine();
    let plan = Command::PlansUpsert(PlanArgs {
        id: hotspot_edge::domain::PlanId::parse("rb").unwrap(),
        name: "radius bench".into(),
        price: 1000,
        currency: hotspot_edge::domain::Currency::parse("KES").unwrap(),
        time: hotspot_edge::units::parse_span("1d").unwrap(),
        validity: Some(hotspot_edge::domain::Validity::Wall),
        data: Some(hotspot_edge::units::parse_bytes("10MB").unwrap()),
        rate_limit: Some("2M/5M".into()),
        devices: Some(1),
        idle_timeout: Some(hotspot_edge::units::parse_span("15m").unwrap()),
        source: Some(hotspot_edge::domain::PlanSource::Cli),
    });
    store
        .apply(
            &engine,
            &SystemClock,
            &mut OsEntropy,
            Source::Cli,
            None,
            &plan,
        )
        .expect("plan");
    for chunk in (0..users).collect::<Vec<_>>().chunks(1000) {
        let cmds: Vec<Command> = chunk
            .iter()
            .map(|i| {
                Command::UserCreate(CreateUserArgs {
                    user: Some(format!("u{i}")),
                    password: Some(format!("pw-{i}")),
                    plan: Some("rb".into()),
                    ..Default::default()
                })
            })
            .collect();
        let refs: Vec<_> = cmds.iter().map(|c| (None, c)).collect();
        for r in store
            .apply_many(&engine, &SystemClock, &mut OsEntropy, Source::Cli, &refs)
            .expect("users")
        {
            r.expect("user created");
        }
    }
    store.close().expect("close");
}

fn daemon(dir: &Path, users: usize) -> (Killed, SocketAddr) {
    let db = dir.join("edge.db");
    site(&db, users);
    std::fs::write(dir.join("secret"), SECRET).expect("secret");
    let (auth, acct) = (free_udp_port(), free_udp_port());
    let cfg = dir.join("edge.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nid = \"bench\"\n[store]\npath = \"{}\"\n[log]\nlevel = \"warn\"\n[router]\nkind = \"radius\"\n[radius]\nauth-listen = \"127.0.0.1:{auth}\"\naccounting-listen = \"127.0.0.1:{acct}\"\n[[radius.clients]]\naddress = \"127.0.0.1\"\nsecret-file = \"{}\"\nkind = \"mikrotik\"\n",
            db.display(),
            dir.join("secret").display()
        ),
    )
    .expect("config");
    let bin = std::env::current_exe()
        .expect("exe")
        .with_file_name("hotspot-edge");
    let child = Proc::new(&bin)
        .args(["run", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e} (cargo build --release)", bin.display()));
    (Killed::new(child), SocketAddr::from(([127, 0, 0, 1], auth)))
}

/// FreeRADIUS with Debian's configuration, our client and users, on its own ports.
fn freeradius(dir: &Path, users: usize) -> (Killed, SocketAddr) {
    let conf = dir.join("freeradius");
    let ok = Proc::new("cp")
        .args(["-rL", "/etc/freeradius/3.0"])
        .arg(&conf)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "copy /etc/freeradius/3.0 (apt-get install freeradius)");
    std::fs::write(
        conf.join("clients.conf"),
        format!("client bench {{\n  ipaddr = 127.0.0.1\n  secret = {SECRET}\n  require_message_authenticator = yes\n}}\n"),
    )
    .expect("clients.conf");
    let mut u = String::with_capacity(users * 200);
    for i in 0..users {
        u.push_str(&format!(
            "u{i} Cleartext-Password := \"pw-{i}\"\n\tSession-Timeout = 86400, Idle-Timeout = 900, Acct-Interim-Interval = 300, Class = \"hotspot-edge user={i} grant={i}\", Mikrotik-Rate-Limit = \"2M/5M\", Mikrotik-Total-Limit = 10000000, Mikrotik-Total-Limit-Gigawords = 0\n\n"
        ));
    }
    std::fs::write(conf.join("mods-config/files/authorize"), u).expect("users");
    let (auth, acct) = (free_udp_port(), free_udp_port());
    // The packaged site listens on 1812/1813 and [::]; here on loopback ports of our own.
    let site = conf.join("sites-available/default");
    let text = std::fs::read_to_string(&site).expect("default site");
    let mut out = String::new();
    let mut listen = 0;
    for line in text.lines() {
        let t = line.trim();
        if t == "port = 0" {
            listen += 1;
            let port = match listen {
                1 => auth,
                2 => acct,
                n => 40_000 + n as u16 * 7,
            };
            out.push_str(&format!("\tport = {port}\n"));
        } else if t.starts_with("ipv6addr = ::") {
            out.push_str("\tipv6addr = ::1\n");
        } else if t.starts_with("ipaddr = *") {
            out.push_str("\tipaddr = 127.0.0.1\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&site, out).expect("site");
    let _ = std::fs::remove_file(conf.join("sites-enabled/default"));
    let _ = std::fs::remove_file(conf.join("sites-enabled/inner-tunnel"));
    std::os::unix::fs::symlink(&site, conf.join("sites-enabled/default")).expect("enable site");
    std::os::unix::fs::symlink(
        conf.join("sites-available/inner-tunnel"),
        conf.join("sites-enabled/inner-tunnel"),
    )
    .expect("enable inner-tunnel");
    // FreeRADIUS drops to its own user: let it read our copy.
    let _ = Proc::new("chmod").args(["-R", "a+rX"]).arg(dir).status();
    let bin = ["/usr/sbin/freeradius", "/usr/sbin/radiusd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("FreeRADIUS is not installed (apt-get install freeradius)");
    let child = Proc::new(bin)
        .arg("-f")
        .arg("-d")
        .arg(&conf)
        .arg("-l")
        .arg(dir.join("freeradius.log"))
        .stdout(Stdio::null())
        .spawn()
        .expect("start freeradius");
    (Killed::new(child), SocketAddr::from(([127, 0, 0, 1], auth)))
}

fn request(id: u8, user: usize) -> (Vec<u8>, [u8; 16]) {
    let mut auth = [0u8; 16];
    let _ = getrandom::fill(&mut auth);
    let mut b = Builder::with_message_authenticator(packet::ACCESS_REQUEST, id);
    b.add(attr::USER_NAME, format!("u{user}").as_bytes())
        .add(
            attr::USER_PASSWORD,
            &packet::pap_hide(format!("pw-{user}").as_bytes(), &auth, SECRET.as_bytes()),
        )
        .add(attr::CALLING_STATION_ID, b"AA:BB:CC:DD:EE:FF")
        .add(attr::NAS_IDENTIFIER, b"bench");
    (b.finish_access_request(&auth, SECRET.as_bytes()), auth)
}

struct Load {
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    accepted: usize,
    lost: usize,
    /// Server CPU time per answered request.
    cpu_us_per_req: f64,
}

/// Requests for one worker, built before the clock starts so that the generator's MD5 and HMAC
/// work is not measured; each is unique (fresh authenticator), so neither server can answer
/// from its duplicate cache.
fn prebuilt(worker: usize, users: usize, count: usize) -> Vec<(Vec<u8>, [u8; 16])> {
    (0..count)
        .map(|i| request((i % 256) as u8, (worker * 7919 + i) % users))
        .collect()
}

/// `workers` closed loops, each one request at a time on its own socket, for `secs`.
async fn load(to: SocketAddr, users: usize, workers: usize, secs: u64) -> Load {
    // Enough for 150,000 requests/s; a worker that runs out stops early (reported as lost).
    let per_worker = (150_000 * secs as usize).div_ceil(workers);
    let batches: Vec<_> = (0..workers)
        .map(|w| prebuilt(w, users, per_worker))
        .collect();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut set = tokio::task::JoinSet::new();
    for reqs in batches {
        set.spawn(async move {
            let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            sock.connect(to).await.expect("connect");
            let (mut lat, mut accepted, mut lost) = (Vec::new(), 0usize, 0usize);
            let mut buf = vec![0u8; 4096];
            for (i, (req, auth)) in reqs.iter().enumerate() {
                if Instant::now() >= end {
                    break;
                }
                let t = Instant::now();
                sock.send(req).await.expect("send");
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                        Ok(Ok(len)) => {
                            let Ok(p) = Packet::parse(&buf[..len]) else {
                                continue;
                            };
                            if p.id() != req[1] {
                                continue;
                            }
                            lat.push(t.elapsed().as_micros() as u64);
                            // Every 64th reply is checked in full (authenticators), the rest
                            // by code: the check is the generator's cost, not the server's.
                            if p.code() == packet::ACCESS_ACCEPT
                                && (i % 64 != 0 || p.response_ok(auth, SECRET.as_bytes()))
                            {
                                accepted += 1;
                            }
                            break;
                        }
                        _ => {
                            lost += 1;
                            break;
                        }
                    }
                }
            }
            (lat, accepted, lost)
        });
    }
    let started = Instant::now();
    let (mut lat, mut accepted, mut lost) = (Vec::new(), 0, 0);
    while let Some(r) = set.join_next().await {
        let (l, a, x) = r.expect("worker");
        lat.extend(l);
        accepted += a;
        lost += x;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    Load {
        rps: lat.len() as f64 / elapsed,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        accepted,
        lost,
        cpu_us_per_req: 0.0,
    }
}

async fn wait_ready(to: SocketAddr, what: &str) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let end = Instant::now() + Duration::from_secs(60);
    let mut buf = vec![0u8; 4096];
    loop {
        let (req, _) = request(1, 0);
        let _ = sock.send_to(&req, to).await;
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
        {
            return;
        }
        assert!(Instant::now() < end, "{what} did not answer within 60 s");
    }
}

pub fn run(users: usize, workers: usize, secs: u64, dir: Option<std::path::PathBuf>) {
    let d = super::work_dir(dir);
    // FreeRADIUS reads its configuration by absolute symlinks.
    let d = d.canonicalize().unwrap_or(d);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (edge, edge_addr) = daemon(&d, users);
    let (fr, fr_addr) = freeradius(&d, users);
    let (edge_pid, fr_pid) = (edge.0.id().to_string(), fr.0.id().to_string());
    rt.block_on(async {
        wait_ready(edge_addr, "hotspot-edge").await;
        wait_ready(fr_addr, "FreeRADIUS").await;
        println!(
            "radius-load: {users} users, PAP + Message-Authenticator, {workers} closed-loop clients, {secs} s per run"
        );
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for round in 1..=2 {
            for (name, addr, pid, into) in [
                ("hotspot-edge", edge_addr, &edge_pid, &mut ours),
                ("FreeRADIUS  ", fr_addr, &fr_pid, &mut theirs),
            ] {
                let cpu0 = cpu_ms(pid);
                let mut l = load(addr, users, workers, secs).await;
                l.cpu_us_per_req =
                    (cpu_ms(pid) - cpu0) as f64 * 1000.0 / (l.rps * secs as f64).max(1.0);
                println!(
                    "round {round} {name} {:>8.0} req/s  p50 {:>5} us  p99 {:>5} us  server CPU {:>5.1} us/req  accepted {} lost {}",
                    l.rps, l.p50_us, l.p99_us, l.cpu_us_per_req, l.accepted, l.lost
                );
                into.push(l);
            }
        }
        let mean = |v: &[Load]| v.iter().map(|l| l.rps).sum::<f64>() / v.len() as f64;
        let worst_p99 = |v: &[Load]| v.iter().map(|l| l.p99_us).max().unwrap_or(0);
        let cpu = |v: &[Load]| v.iter().map(|l| l.cpu_us_per_req).sum::<f64>() / v.len() as f64;
        println!(
            "throughput ratio hotspot-edge / FreeRADIUS = {:.2}x  (p99 worst: {} us vs {} us)",
            mean(&ours) / mean(&theirs),
            worst_p99(&ours),
            worst_p99(&theirs)
        );
        println!(
            "server CPU per request: hotspot-edge {:.1} us, FreeRADIUS {:.1} us = {:.2}x less CPU",
            cpu(&ours),
            cpu(&theirs),
            cpu(&theirs) / cpu(&ours).max(0.001)
        );
    });
    println!(
        "peak RSS: hotspot-edge {} KiB, FreeRADIUS {} KiB",
        rss_kib(&edge_pid, "VmHWM:"),
        rss_kib(&fr_pid, "VmHWM:")
    );
    drop((edge, fr));
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&d);
    } else {
        println!("kept {}", d.display());
    }
}
