//! The store commands (`plans`, `vouchers`, `payments`, `users`, `sessions`, `outbox`, `jobs`,
//! `status`): each action that changes state is an engine [`Command`] applied through
//! [`Store::apply`], the same path MQTT and the portal use.

use std::io::Write;

use serde_json::{json, Value};

use super::args::*;
use super::render::render_status;
use crate::app;
use crate::clock::Clock;
use crate::config::Config;
use crate::engine::command::*;
use crate::engine::{Command, OsEntropy};
use crate::store::{ApplyError, Store};
use crate::units::format_bytes;

pub(super) enum CliError {
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

pub(super) struct Ctx<'a, W: Write> {
    pub(super) config: &'a Config,
    pub(super) store: &'a mut Store,
    pub(super) clock: &'a dyn Clock,
    pub(super) json: bool,
    pub(super) out: W,
}

fn command_id() -> String {
    random_id("cli")
}

pub(super) fn random_id(prefix: &str) -> String {
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
            Source::Cli,
            Some(&id),
            &cmd,
        )?;
        Ok(applied.result)
    }

    pub(super) fn dispatch(&mut self, cmd: &Cmd) -> Result<(), CliError> {
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
            Cmd::Clock(ClockCmd::ResetHighWater) => {
                match self.store.reset_clock_high_water(self.clock, "cli")? {
                    Ok(r) => {
                        let v = serde_json::to_value(&r).unwrap_or_default();
                        let text = format!(
                            "clock trusted from {} (high-water mark was {})",
                            r.to, r.from
                        );
                        self.print_result(&v, &text)
                    }
                    Err(why) => Err(CliError::Refused(why)),
                }
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
