//! The command line: `hotspot-edge [-c PATH] [--json] COMMAND`. Every action that changes state
//! is an engine [`Command`] applied through [`Store::apply`], the same path MQTT and the portal use.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

#[cfg(feature = "demo")]
mod demo;

use crate::app;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, EXIT_BAD_CONFIG};
use crate::engine::command::*;
use crate::engine::{Command, OsEntropy};
use crate::store::{ApplyError, Store};
use crate::units::{format_bytes, format_span, Span};

/// Exit codes (sysexits.h where one fits).
pub const EXIT_OK: i32 = 0;
pub const EXIT_REFUSED: i32 = 1;
pub const EXIT_USAGE: i32 = 64;
pub const EXIT_STORE: i32 = 74;

#[derive(Debug, Parser)]
#[command(
    name = "hotspot-edge",
    version,
    about = "The local brain of a pay-per-use WiFi hotspot router",
    propagate_version = true
)]
pub struct Cli {
    /// Config file.
    #[arg(short = 'c', long = "config", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print JSON for scripts instead of tables for people.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the daemon: expire grants on time, until SIGINT or SIGTERM.
    Run,
    /// Check the config file; prints `ok` and warnings, or `PATH:LINE:COL: message` (exit 78).
    CheckConfig,
    /// Show the site's state: users, sessions, outbox, jobs, clock.
    Status,
    /// Packages for sale.
    #[command(subcommand)]
    Plans(PlansCmd),
    /// Pre-sold voucher codes.
    #[command(subcommand)]
    Vouchers(VouchersCmd),
    /// Money received.
    #[command(subcommand)]
    Payments(PaymentsCmd),
    /// Hotspot users and what they are entitled to.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Device logins.
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Events waiting for the cloud.
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// Router operations waiting or failed.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// A self-contained demo against the bundled RouterOS simulator: sell, log in, expire, report.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Sign a remote command for [mqtt] (operators, scripts, tests): prints the message to publish
    /// on {prefix}/{site}/commands. Site and key come from the config unless given.
    SignCommand(SignArgs),
    /// Print the RouterOS commands that prepare a router for the daemon (least-privilege user,
    /// API-SSL, allow-list, a profile per plan, RADIUS when configured), or check such a script.
    RouterosScript(RouterosScriptArgs),
}

#[derive(Debug, Args)]
pub struct RouterosScriptArgs {
    /// The daemon's address as the router sees it: the only address allowed to use the API.
    #[arg(long, value_name = "IP", required_unless_present = "check")]
    pub daemon_address: Option<std::net::IpAddr>,
    /// Write the router password and RADIUS secret into the script (default: placeholders).
    #[arg(long)]
    pub include_secrets: bool,
    /// Check a script's syntax and arguments instead of printing one.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Command type, e.g. payment.confirmed or user.suspend.
    #[arg(value_name = "TYPE")]
    pub ty: String,
    /// Its args as JSON, e.g. '{"user": "k7m2qp"}'.
    #[arg(value_name = "ARGS", default_value = "{}")]
    pub args: String,
    /// Command id (default: random). Reuse it to retry: the site applies an id once.
    #[arg(long)]
    pub id: Option<String>,
    /// Default: [site] id.
    #[arg(long)]
    pub site: Option<String>,
    /// Default: [mqtt] command-key-file.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// RFC 3339 (default: now).
    #[arg(long, value_name = "TIME")]
    pub issued_at: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PlansCmd {
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VoucherFormat {
    Table,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum VouchersCmd {
    /// Generate a batch of voucher codes for a plan.
    Generate {
        #[arg(long)]
        plan: String,
        #[arg(long)]
        count: u32,
        #[arg(long)]
        length: Option<usize>,
        /// Unredeemed codes expire after this long (e.g. 90d).
        #[arg(long)]
        expires_in: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: VoucherFormat,
    },
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        batch: Option<String>,
        /// 0 for all.
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Redeem a code: creates a user (or tops up --user) with the voucher's plan.
    Redeem {
        code: String,
        #[arg(long)]
        mac: Option<String>,
        #[arg(long)]
        ip: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
    Revoke {
        #[arg(required = true)]
        codes: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Provider {
    Cash,
    Mpesa,
}

#[derive(Debug, Subcommand)]
pub enum PaymentsCmd {
    /// Record money received; the same provider + reference twice buys once.
    Record {
        #[arg(long, value_enum)]
        provider: Provider,
        #[arg(long)]
        reference: String,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        plan: String,
        /// Minor units; defaults to the plan's price.
        #[arg(long)]
        amount: Option<u64>,
        #[arg(long)]
        mac: Option<String>,
        #[arg(long)]
        ip: Option<String>,
    },
    List {
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    Show {
        user: String,
    },
    /// Give a user more: a plan's worth, or a time (and data).
    Extend {
        user: String,
        #[arg(long, conflicts_with = "time")]
        plan: Option<String>,
        #[arg(long)]
        time: Option<String>,
        #[arg(long, requires = "time")]
        data: Option<String>,
    },
    Suspend {
        user: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Resume {
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    List {
        #[arg(long)]
        active: bool,
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// Events as the cloud will receive them, oldest first.
    List {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    Stats,
}

#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Put failed jobs (or the one given) back in the queue.
    Retry { id: Option<i64> },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Length of the demo's time plan, in seconds.
    #[arg(long, default_value_t = 15)]
    pub seconds: u32,
}

fn routeros_script(a: &RouterosScriptArgs, config: &config::Config) -> i32 {
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
    let mut store = match app::open_store(&config, &clock, false) {
        Ok(s) => s,
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
            return 71;
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

fn sign_command(a: &SignArgs, config: Option<&Config>) -> i32 {
    let site = a
        .site
        .clone()
        .or_else(|| config.map(|c| c.site_id().to_string()));
    let key_file = a.key_file.clone().or_else(|| {
        config
            .and_then(|c| c.mqtt.as_ref())
            .and_then(|m| m.get_ref().command_key_file.clone())
    });
    let (Some(site), Some(key_file)) = (site, key_file) else {
        eprintln!("error: give --site and --key-file, or a config with [mqtt] command-key-file");
        return EXIT_USAGE;
    };
    let key = match crate::secret::read_secret_file(&key_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let args: Value = match serde_json::from_str(&a.args) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            eprintln!("error: ARGS must be a JSON object, e.g. '{{\"user\": \"k7m2qp\"}}'");
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: ARGS is not JSON: {e}");
            return EXIT_USAGE;
        }
    };
    let issued_at = match &a.issued_at {
        Some(t) if crate::clock::parse_rfc3339(t).is_none() => {
            eprintln!("error: --issued-at {t:?} is not RFC 3339");
            return EXIT_USAGE;
        }
        Some(t) => t.clone(),
        None => crate::clock::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        ),
    };
    let body = json!({
        "id": a.id.clone().unwrap_or_else(|| random_id("cmd")),
        "site": site,
        "issued-at": issued_at,
        "type": a.ty,
        "args": args,
    })
    .to_string();
    println!(
        "{}",
        crate::uplink::mqtt::remote::envelope(key.expose().as_bytes(), &body)
    );
    EXIT_OK
}

enum CliError {
    Refused(String),
    Store(String),
}

impl From<ApplyError> for CliError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Rejected(r) => CliError::Refused(r.message),
            ApplyError::Store(s) => CliError::Store(s.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        CliError::Store(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Store(format!("writing output: {e}"))
    }
}

struct Ctx<'a, W: Write> {
    config: &'a Config,
    store: &'a mut Store,
    clock: &'a dyn Clock,
    json: bool,
    out: W,
}

fn command_id() -> String {
    random_id("cli")
}

fn random_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    crate::engine::Entropy::fill(&mut OsEntropy, &mut b);
    format!(
        "{prefix}-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

impl<W: Write> Ctx<'_, W> {
    fn apply(&mut self, cmd: Command) -> Result<Value, CliError> {
        let id = command_id();
        let applied = self.store.apply(
            &app::engine(self.config),
            self.clock,
            &mut OsEntropy,
            "cli",
            Some(&id),
            &cmd,
        )?;
        Ok(applied.result)
    }

    fn print_json(&mut self, v: &Value) -> Result<(), CliError> {
        writeln!(
            self.out,
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_default()
        )?;
        Ok(())
    }

    fn print_table(&mut self, t: crate::store::views::Table) -> Result<(), CliError> {
        if self.json {
            self.print_json(&t.to_json())
        } else {
            write!(self.out, "{}", t.render())?;
            Ok(())
        }
    }

    /// JSON as is, or a few `key: value` lines for people.
    fn print_result(&mut self, v: &Value, headline: &str) -> Result<(), CliError> {
        if self.json {
            return self.print_json(v);
        }
        writeln!(self.out, "{headline}")?;
        if let Value::Object(m) = v {
            for (k, val) in m {
                let text = match (k.as_str(), val) {
                    ("time-left-ms", Value::Number(n)) => {
                        format_span(Span(n.as_i64().unwrap_or(0)))
                    }
                    ("data-left", Value::Number(n)) => format_bytes(n.as_u64().unwrap_or(0)),
                    (_, Value::Null) => continue,
                    (_, Value::String(s)) => s.clone(),
                    (_, other) => other.to_string(),
                };
                let key = if k == "time-left-ms" {
                    "time-left"
                } else {
                    k.as_str()
                };
                writeln!(self.out, "  {key}: {text}")?;
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, cmd: &Cmd) -> Result<(), CliError> {
        let now = self.store.now(self.clock)?;
        match cmd {
            Cmd::Run | Cmd::CheckConfig | Cmd::SignCommand(_) | Cmd::RouterosScript(_) => Ok(()),
            #[cfg(feature = "demo")]
            Cmd::Demo(_) => Ok(()),
            Cmd::Status => {
                let v = self.store.status(self.config.site_id(), &now)?;
                if self.json {
                    self.print_json(&v)
                } else {
                    write!(self.out, "{}", render_status(&v))?;
                    Ok(())
                }
            }
            Cmd::Plans(PlansCmd::List) => {
                let t = self.store.view_plans()?;
                self.print_table(t)
            }
            Cmd::Vouchers(v) => self.vouchers(v, &now),
            Cmd::Payments(PaymentsCmd::Record {
                provider,
                reference,
                phone,
                plan,
                amount,
                mac,
                ip,
            }) => {
                let r = self.apply(Command::PaymentConfirmed(PaymentArgs {
                    provider: match provider {
                        Provider::Cash => "cash".into(),
                        Provider::Mpesa => "mpesa".into(),
                    },
                    reference: reference.clone(),
                    phone: phone.clone(),
                    amount: *amount,
                    plan: plan.clone(),
                    mac: mac.clone(),
                    ip: ip.clone(),
                }))?;
                let headline = if r["duplicate"] == json!(true) {
                    format!("duplicate: {reference} was already recorded; nothing changed")
                } else {
                    format!("payment recorded: {reference}")
                };
                self.print_result(&r, &headline)
            }
            Cmd::Payments(PaymentsCmd::List { limit }) => {
                let t = self.store.view_payments(*limit)?;
                self.print_table(t)
            }
            Cmd::Users(u) => self.users(u, &now),
            Cmd::Sessions(SessionsCmd::List { active, limit }) => {
                let t = self.store.view_sessions(None, *active, *limit)?;
                self.print_table(t)
            }
            Cmd::Outbox(OutboxCmd::List { after, limit }) => {
                let rows = self
                    .store
                    .view_outbox(self.config.site_id(), *after, *limit)?;
                if self.json {
                    return self.print_json(&Value::Array(rows));
                }
                for r in &rows {
                    writeln!(
                        self.out,
                        "{:>6}  {}  {:<24} {}{}",
                        r["seq"],
                        r["occurred-at"].as_str().unwrap_or(""),
                        r["type"].as_str().unwrap_or(""),
                        r["payload"],
                        if r["time-trusted"] == json!(false) {
                            "  (clock not trusted)"
                        } else {
                            ""
                        }
                    )?;
                }
                if rows.is_empty() {
                    writeln!(self.out, "(outbox empty)")?;
                }
                Ok(())
            }
            Cmd::Outbox(OutboxCmd::Stats) => {
                let v = self.store.outbox_stats(&now)?;
                self.print_result(&v, "outbox")
            }
            Cmd::Jobs(JobsCmd::List { state, limit }) => {
                let t = self.store.view_jobs(&now, state.as_deref(), *limit)?;
                self.print_table(t)
            }
            Cmd::Jobs(JobsCmd::Retry { id }) => {
                let n = self.store.retry_jobs(self.clock, *id)?;
                if *id.as_ref().unwrap_or(&0) != 0 && n == 0 {
                    return Err(CliError::Refused(format!(
                        "job {} is not failed (or a pending job for the same target exists)",
                        id.unwrap_or(0)
                    )));
                }
                self.print_result(&json!({"requeued": n}), "jobs requeued")
            }
        }
    }

    fn vouchers(&mut self, v: &VouchersCmd, now: &crate::clock::Now) -> Result<(), CliError> {
        match v {
            VouchersCmd::Generate {
                plan,
                count,
                length,
                expires_in,
                format,
            } => {
                let r = self.apply(Command::VouchersGenerate(GenerateArgs {
                    plan: plan.clone(),
                    count: *count,
                    length: *length,
                    expires_in: expires_in.clone(),
                }))?;
                let codes: Vec<&str> = r["codes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
                    .unwrap_or_default();
                if self.json {
                    return self.print_json(&r);
                }
                match format {
                    VoucherFormat::Csv => {
                        writeln!(self.out, "code,plan,batch,expires")?;
                        let expires = r["expires-at"].as_str().unwrap_or("");
                        let batch = r["batch"].as_str().unwrap_or("");
                        for c in &codes {
                            writeln!(self.out, "{c},{plan},{batch},{expires}")?;
                        }
                    }
                    VoucherFormat::Table => {
                        writeln!(
                            self.out,
                            "batch {} of {} voucher(s) for plan {plan}:",
                            r["batch"].as_str().unwrap_or(""),
                            codes.len()
                        )?;
                        for c in &codes {
                            writeln!(self.out, "{c}")?;
                        }
                    }
                }
                Ok(())
            }
            VouchersCmd::List {
                state,
                batch,
                limit,
            } => {
                let t =
                    self.store
                        .view_vouchers(now, state.as_deref(), batch.as_deref(), *limit)?;
                self.print_table(t)
            }
            VouchersCmd::Redeem {
                code,
                mac,
                ip,
                user,
            } => {
                let r = self.apply(Command::VoucherRedeem(RedeemArgs {
                    code: code.clone(),
                    mac: mac.clone(),
                    ip: ip.clone(),
                    user: user.clone(),
                }))?;
                self.print_result(&r, &format!("voucher {code} redeemed"))
            }
            VouchersCmd::Revoke { codes } => {
                let r = self.apply(Command::VouchersRevoke(RevokeArgs {
                    codes: codes.clone(),
                }))?;
                self.print_result(&r, "vouchers revoked")
            }
        }
    }

    fn users(&mut self, u: &UsersCmd, now: &crate::clock::Now) -> Result<(), CliError> {
        match u {
            UsersCmd::List { state, limit } => {
                let t = self.store.view_users(now, state.as_deref(), *limit)?;
                self.print_table(t)
            }
            UsersCmd::Show { user } => match self.store.view_user(now, user)? {
                Some(v) if self.json => self.print_json(&v),
                Some(v) => {
                    let mut summary = v.clone();
                    if let Value::Object(m) = &mut summary {
                        m.remove("grants");
                        m.remove("sessions");
                        m.remove("time-left-ms");
                    }
                    self.print_result(&summary, &format!("user {user}"))?;
                    writeln!(self.out, "grants:")?;
                    for g in v["grants"].as_array().into_iter().flatten() {
                        writeln!(
                            self.out,
                            "  #{} {} {} {} time {} left {} data-used {}{}",
                            g["grant"],
                            g["plan"].as_str().unwrap_or(""),
                            g["validity"].as_str().unwrap_or(""),
                            g["state"].as_str().unwrap_or(""),
                            g["time"].as_str().unwrap_or(""),
                            g["time-left"].as_str().unwrap_or(""),
                            format_bytes(g["bytes-used"].as_u64().unwrap_or(0)),
                            g["ends"]
                                .as_str()
                                .map(|e| format!(" ends {e}"))
                                .unwrap_or_default(),
                        )?;
                    }
                    Ok(())
                }
                None => Err(CliError::Refused(format!("unknown user {user:?}"))),
            },
            UsersCmd::Extend {
                user,
                plan,
                time,
                data,
            } => {
                let r = self.apply(Command::UserExtend(ExtendArgs {
                    user: user.clone(),
                    plan: plan.clone(),
                    time: time.clone(),
                    data: data.clone(),
                }))?;
                self.print_result(&r, &format!("user {user} extended"))
            }
            UsersCmd::Suspend { user, reason } => {
                let r = self.apply(Command::UserSuspend(SuspendArgs {
                    user: user.clone(),
                    reason: reason.clone(),
                }))?;
                self.print_result(&r, &format!("user {user} suspended"))
            }
            UsersCmd::Resume { user } => {
                let r = self.apply(Command::UserResume(UserArg { user: user.clone() }))?;
                self.print_result(&r, &format!("user {user} resumed"))
            }
        }
    }
}

fn render_status(v: &Value) -> String {
    let mut s = String::new();
    let g = |p: &str| v.pointer(p).cloned().unwrap_or(Value::Null);
    let txt = |x: Value| match x {
        Value::String(s) => s,
        Value::Null => "-".into(),
        o => o.to_string(),
    };
    s.push_str(&format!("site            {}\n", txt(g("/site"))));
    s.push_str(&format!(
        "clock           {} ({})\n",
        txt(g("/clock/now")),
        if g("/clock/trusted") == json!(true) {
            "trusted"
        } else {
            "NOT trusted: waiting for NTP"
        }
    ));
    s.push_str(&format!(
        "database        {} (schema {}, {} bytes)\n",
        txt(g("/database/path")),
        txt(g("/database/schema-version")),
        txt(g("/database/size-bytes"))
    ));
    s.push_str(&format!("users           {}\n", txt(g("/users"))));
    s.push_str(&format!("running grants  {}\n", txt(g("/running-grants"))));
    s.push_str(&format!("active sessions {}\n", txt(g("/active-sessions"))));
    s.push_str(&format!("unused vouchers {}\n", txt(g("/unused-vouchers"))));
    s.push_str(&format!("payments        {}\n", txt(g("/payments"))));
    s.push_str(&format!("next deadline   {}\n", txt(g("/next-deadline"))));
    s.push_str(&format!(
        "outbox          {} waiting (oldest seq {}, {} ms old)\n",
        txt(g("/outbox/depth")),
        txt(g("/outbox/oldest-seq")),
        txt(g("/outbox/oldest-age-ms"))
    ));
    let uplink = g("/uplink");
    if !uplink.is_null() {
        s.push_str(&format!(
            "cloud           {} via {} since {}{}\n",
            txt(uplink.get("state").cloned().unwrap_or(Value::Null)),
            txt(uplink.get("via").cloned().unwrap_or(Value::Null)),
            txt(uplink.get("since").cloned().unwrap_or(Value::Null)),
            match uplink.get("error") {
                Some(Value::String(e)) => format!(": {e}"),
                _ => String::new(),
            }
        ));
    }
    s.push_str(&format!(
        "jobs            {} pending, {} failed\n",
        txt(g("/jobs/pending")),
        txt(g("/jobs/failed"))
    ));
    if let Some(warnings) = g("/nas-warnings").as_array() {
        for w in warnings {
            s.push_str(&format!("router warning  {}\n", txt(w.clone())));
        }
    }
    s
}

/// Used by the demo to run the CLI's own code paths against a config file.
pub fn run_args(config: &Path, args: &[&str]) -> i32 {
    let mut v: Vec<OsString> = vec!["hotspot-edge".into(), "-c".into(), config.into()];
    v.extend(args.iter().map(OsString::from));
    main(v)
}
