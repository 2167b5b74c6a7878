//! The command line's shape (clap): commands, their arguments and help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// The site's notion of time (docs/time.md).
    #[command(subcommand)]
    Clock(ClockCmd),
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

impl Cmd {
    /// Changes the database: such a command first checks it (`PRAGMA quick_check`) and refuses
    /// a damaged one, as the daemon does at start. Reads skip the check (it reads every page).
    pub fn writes(&self) -> bool {
        match self {
            Cmd::Vouchers(v) => !matches!(v, VouchersCmd::List { .. }),
            Cmd::Payments(p) => matches!(p, PaymentsCmd::Record { .. }),
            Cmd::Users(u) => !matches!(u, UsersCmd::List { .. } | UsersCmd::Show { .. }),
            Cmd::Jobs(j) => matches!(j, JobsCmd::Retry { .. }),
            Cmd::Clock(_) => true,
            Cmd::Run
            | Cmd::CheckConfig
            | Cmd::Status
            | Cmd::Plans(_)
            | Cmd::Sessions(_)
            | Cmd::Outbox(_)
            | Cmd::SignCommand(_)
            | Cmd::RouterosScript(_) => false,
            #[cfg(feature = "demo")]
            Cmd::Demo(_) => false,
        }
    }
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
pub enum ClockCmd {
    /// Trust the wall clock as it is now: bring the high-water mark down to it. For a clock
    /// once set ahead by mistake and then corrected, which otherwise leaves the site untrusted
    /// until the clock passes the wrong mark. Check the time first (`date`).
    ResetHighWater,
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
