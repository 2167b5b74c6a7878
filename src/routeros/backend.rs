//! Hotspot operations on a RouterOS router. Every write is confirmed by reading it back: with
//! mikrotik-rs 0.10 the outcome of an `add` is unknown (a success may arrive as a protocol-error
//! trap, and the `=ret=` id is dropped), so "upsert" is find by name, then add or set, then print.
//! These operations know *how*; when to call them is the engine's and the enforcer's business.

use std::collections::{HashMap, HashSet};

use super::client::{ApiClient, Call, RouterError, Row};
use super::meaning::{self, Verdict};

/// Ids per `set`/`remove` in bulk operations (keeps each API word a few kB).
const BULK: usize = 400;

/// Marks what hotspot-edge created, so it never touches a technician's own users and profiles.
pub const MANAGED: &str = "managed by hotspot-edge";

const USER: &str = "/ip/hotspot/user";
const PROFILE: &str = "/ip/hotspot/user/profile";
const ACTIVE: &str = "/ip/hotspot/active";
const COOKIE: &str = "/ip/hotspot/cookie";

pub use crate::nas::{ActiveSession, DesiredProfile, DesiredUser, Health};

fn field<'a>(r: &'a Row, k: &str) -> Option<&'a str> {
    r.get(k).map(String::as_str).filter(|v| !v.is_empty())
}

/// The fields of `want` that `row` does not carry by meaning (or hides), in `want`'s order. A
/// value that cannot be compared fails the operation with the menu, field and both values.
fn differing<'w>(
    menu: &str,
    row: &Row,
    want: &'w [(&str, String)],
) -> Result<Vec<(&'w str, Verdict)>, RouterError> {
    let mut out = Vec::new();
    for (k, v) in want {
        match meaning::compare(menu, k, v, row.get(*k).map(String::as_str)) {
            Ok(Verdict::Same) => {}
            Ok(verdict) => out.push((*k, verdict)),
            Err(e) => return Err(RouterError::Unconfirmed(e.to_string())),
        }
    }
    Ok(out)
}

/// The fields of `/ip/hotspot/active` the poll reads.
const ACTIVE_PROPS: &[&str] = &[
    ".id",
    "user",
    "server",
    "mac-address",
    "address",
    "bytes-in",
    "bytes-out",
];

/// One printed `/ip/hotspot/active` row as a session; `None` for a row without id or user (a
/// host being logged in has neither yet).
pub fn active_session(r: &Row) -> Option<ActiveSession> {
    let counter = |k: &str| field(r, k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(ActiveSession {
        id: field(r, ".id")?.to_string(),
        user: field(r, "user")?.to_string(),
        server: field(r, "server").unwrap_or("").to_string(),
        mac: field(r, "mac-address").map(String::from),
        address: field(r, "address").map(String::from),
        bytes_in: counter("bytes-in"),
        bytes_out: counter("bytes-out"),
    })
}

/// What `/system/identity` and `/system/resource` say about the router.
pub fn health(identity: Option<&Row>, resource: Option<&Row>) -> Health {
    let empty = Row::new();
    let res = resource.unwrap_or(&empty);
    Health {
        identity: identity
            .and_then(|r| field(r, "name"))
            .unwrap_or("")
            .to_string(),
        version: field(res, "version").unwrap_or("").to_string(),
        board: field(res, "board-name").unwrap_or("").to_string(),
        cpu_load: field(res, "cpu-load").and_then(|v| v.parse().ok()),
        free_memory: field(res, "free-memory").and_then(|v| v.parse().ok()),
        total_memory: field(res, "total-memory").and_then(|v| v.parse().ok()),
        uptime: field(res, "uptime").map(String::from),
    }
}

#[derive(Clone, Debug)]
pub struct RouterOsNas {
    pub api: ApiClient,
}

impl RouterOsNas {
    pub fn new(api: ApiClient) -> Self {
        RouterOsNas { api }
    }

    async fn find(&self, menu: &str, name: &str) -> Result<Option<Row>, RouterError> {
        let rows = self
            .api
            .run(&Call::new(&format!("{menu}/print")).query("name", name))
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Adds or sets `name` in `menu` so that it carries `want`, then reads it back and compares
    /// by meaning ([`meaning`]): a `print` does not echo what was written. Only the fields that
    /// differ (or that the router hides from us) are written.
    async fn upsert(
        &self,
        menu: &str,
        name: &str,
        want: &[(&str, String)],
    ) -> Result<(), RouterError> {
        let existing = self.find(menu, name).await?;
        self.upsert_found(menu, name, existing, want).await
    }

    /// [`RouterOsNas::upsert`] with the row already read (`None`: not there).
    async fn upsert_found(
        &self,
        menu: &str,
        name: &str,
        existing: Option<Row>,
        want: &[(&str, String)],
    ) -> Result<(), RouterError> {
        let result = match &existing {
            Some(row) => {
                // A hidden password counts as stale: writing it is the only way to be sure. So
                // does a value we cannot read: the read-back after the write decides.
                let stale = differing(menu, row, want)
                    .unwrap_or_else(|_| want.iter().map(|(k, _)| (*k, Verdict::Differs)).collect());
                if stale.is_empty() {
                    return Ok(());
                }
                let id = field(row, ".id").unwrap_or(name).to_string();
                let mut call = Call::new(&format!("{menu}/set")).attr(".id", id);
                for (k, v) in want {
                    if stale.iter().any(|(s, _)| s == k) {
                        call = call.attr(k, v.clone());
                    }
                }
                self.api.run(&call).await.map(|_| ())
            }
            None => {
                let mut call = Call::new(&format!("{menu}/add")).attr("name", name);
                for (k, v) in want {
                    call = call.attr(k, v.clone());
                }
                self.api.run(&call).await.map(|_| ())
            }
        };
        if let Err(e) = &result {
            if e.is_link() {
                return result;
            }
        }
        // Whatever the reply said, the router's state is the truth.
        let Some(row) = self.find(menu, name).await? else {
            return Err(match result {
                Err(e) => e,
                Ok(()) => {
                    RouterError::Unconfirmed(format!("{menu} {name}: not there after the add"))
                }
            });
        };
        let wrong: Vec<String> = differing(menu, &row, want)?
            .into_iter()
            .filter(|(_, v)| *v == Verdict::Differs)
            .map(|(k, _)| {
                let printed = row
                    .get(k)
                    .map_or_else(|| "(absent)".to_string(), |p| format!("{p:?}"));
                let written = want.iter().find(|(w, _)| *w == k).map_or("", |(_, v)| v);
                format!("{k} is {printed} after writing {written:?}")
            })
            .collect();
        if wrong.is_empty() {
            return Ok(());
        }
        Err(match result {
            Err(e) => e,
            Ok(()) => RouterError::Unconfirmed(format!(
                "{menu} {name}: not as written after the write: {}",
                wrong.join("; ")
            )),
        })
    }

    pub async fn ensure_profile(&self, p: &DesiredProfile) -> Result<(), RouterError> {
        let mut want = vec![
            ("shared-users", p.shared_users.to_string()),
            ("comment", MANAGED.to_string()),
        ];
        if let Some(r) = &p.rate_limit {
            want.push(("rate-limit", r.clone()));
        }
        self.upsert(PROFILE, &p.name, &want).await
    }

    pub async fn upsert_user(&self, u: &DesiredUser) -> Result<(), RouterError> {
        let want = vec![
            ("password", u.password.clone()),
            ("profile", u.profile.clone()),
            (
                "disabled",
                if u.disabled { "yes" } else { "no" }.to_string(),
            ),
            (
                "limit-uptime",
                // RouterOS counts uptime in whole seconds: round up, never cut a second short.
                u.limit_uptime_ms
                    .map(|ms| super::format::format_duration(ms.saturating_add(999) / 1000 * 1000))
                    .unwrap_or_else(|| "0s".into()),
            ),
            (
                "limit-bytes-total",
                u.limit_bytes_total.unwrap_or(0).to_string(),
            ),
            (
                "mac-address",
                u.mac.clone().unwrap_or_else(|| "00:00:00:00:00:00".into()),
            ),
            ("comment", MANAGED.to_string()),
        ];
        // Limits are cumulative on the router: start them from zero whenever they are rewritten
        // (a new entitlement, or time used since the last sync). Unchanged limits keep the
        // counters: the router's count and ours still agree.
        let existing = self.find(USER, &u.name).await?;
        if let Some(row) = &existing {
            let limits: Vec<(&str, String)> = want
                .iter()
                .filter(|(k, _)| matches!(*k, "limit-uptime" | "limit-bytes-total"))
                .cloned()
                .collect();
            let changed = differing(USER, row, &limits).map_or(true, |d| !d.is_empty());
            if let (true, Some(id)) = (changed, field(row, ".id")) {
                let _ = self
                    .api
                    .run(&Call::new(&format!("{USER}/reset-counters")).attr(".id", id))
                    .await;
            }
        }
        self.upsert_found(USER, &u.name, existing, &want).await
    }

    /// Removes every cookie of `user` (else MAC-cookie login lets an expired user back in).
    pub async fn remove_cookies(&self, user: &str) -> Result<usize, RouterError> {
        self.remove_where(COOKIE, "user", user).await
    }

    /// Logs every device of `user` out, then re-reads the active list until none is left.
    pub async fn disconnect(&self, user: &str) -> Result<usize, RouterError> {
        let mut removed = 0;
        for _ in 0..3 {
            let n = self.remove_where(ACTIVE, "user", user).await?;
            removed += n;
            if n == 0 {
                return Ok(removed);
            }
        }
        let left = self
            .api
            .run(
                &Call::new(&format!("{ACTIVE}/print"))
                    .query("user", user)
                    .props(&[".id"]),
            )
            .await?;
        if left.is_empty() {
            Ok(removed)
        } else {
            Err(RouterError::Unconfirmed(format!(
                "{} session(s) of {user} still active",
                left.len()
            )))
        }
    }

    /// Cuts off many users at once (an expiry burst): removes every cookie and active row of every
    /// user in `users`, disables those in `disable`, with one `print` per menu and `set` /
    /// `remove` on comma-separated id lists, then re-reads to confirm none is left. Returns, per
    /// user, the sessions and cookies removed.
    pub async fn bulk_disconnect(
        &self,
        users: &HashSet<String>,
        disable: &HashSet<String>,
    ) -> Result<HashMap<String, (u32, u32)>, RouterError> {
        let mut removed: HashMap<String, (u32, u32)> = HashMap::new();
        // Cookies and sessions together: the requests go out at once over the one connection.
        // The users to disable are read after: a third whole-menu print alongside would share
        // the connection with them and delay the cut-off.
        let (cookies, sessions) = tokio::join!(
            self.remove_users_rows(COOKIE, users),
            self.remove_users_rows(ACTIVE, users)
        );
        for (u, n) in cookies? {
            removed.entry(u).or_default().1 += n;
        }
        for (u, n) in sessions? {
            removed.entry(u).or_default().0 += n;
        }
        // Cookies and sessions first (that is what cuts the device off), then disable, then
        // confirm: a device that slipped back in before the disable is still caught here.
        for chunk in self.enabled_ids(disable).await?.chunks(BULK) {
            self.api
                .run(
                    &Call::new(&format!("{USER}/set"))
                        .attr(".id", chunk.join(","))
                        .attr("disabled", "yes"),
                )
                .await?;
        }
        let still: Vec<String> = self
            .api
            .run_map(
                &Call::new(&format!("{ACTIVE}/print")).props(&["user"]),
                |r| {
                    field(&r, "user")
                        .filter(|u| users.contains(*u))
                        .map(String::from)
                },
            )
            .await?;
        if !still.is_empty() {
            return Err(RouterError::Unconfirmed(format!(
                "{} session(s) still active after removal (first: {})",
                still.len(),
                still[0]
            )));
        }
        Ok(removed)
    }

    /// The ids of those of `names` that are hotspot users not yet disabled: one `print`, keeping
    /// only their rows (a router has thousands more).
    async fn enabled_ids(&self, names: &HashSet<String>) -> Result<Vec<String>, RouterError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        self.api
            .run_map(
                &Call::new(&format!("{USER}/print")).props(&[".id", "name", "disabled"]),
                |r| {
                    let wanted = field(&r, "name").is_some_and(|n| names.contains(n))
                        && !meaning::printed_bool(field(&r, "disabled")).unwrap_or(false);
                    wanted.then(|| field(&r, ".id").map(String::from)).flatten()
                },
            )
            .await
    }

    /// Removes every row of `menu` whose `user` is in `users`: one `print`, then `remove` on id
    /// lists (sent together). Each `remove` answered `!done` removed its rows; the menu is read
    /// again (up to three reads in all) only when one found a row already gone, since the
    /// router then may not have removed the rest of that list.
    async fn remove_users_rows(
        &self,
        menu: &str,
        users: &HashSet<String>,
    ) -> Result<HashMap<String, u32>, RouterError> {
        let mut removed: HashMap<String, u32> = HashMap::new();
        for _ in 0..3 {
            let hit: Vec<(String, String)> = self
                .api
                .run_map(
                    &Call::new(&format!("{menu}/print")).props(&[".id", "user"]),
                    |r| {
                        let user = field(&r, "user").filter(|u| users.contains(*u))?;
                        Some((field(&r, ".id")?.to_string(), user.to_string()))
                    },
                )
                .await?;
            if hit.is_empty() {
                break;
            }
            let calls: Vec<Call> = hit
                .chunks(BULK)
                .map(|chunk| {
                    let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
                    Call::new(&format!("{menu}/remove")).attr(".id", ids.join(","))
                })
                .collect();
            // In flight together: the connection multiplexes commands by tag.
            let mut set = tokio::task::JoinSet::new();
            for (i, call) in calls.into_iter().enumerate() {
                let api = self.api.clone();
                set.spawn(async move { (i, api.run(&call).await) });
            }
            let mut results: Vec<(usize, Result<Vec<Row>, RouterError>)> = Vec::new();
            while let Some(joined) = set.join_next().await {
                match joined {
                    Ok(r) => results.push(r),
                    Err(e) => {
                        return Err(RouterError::Unconfirmed(format!("bulk remove task: {e}")))
                    }
                }
            }
            results.sort_by_key(|(i, _)| *i);
            let results = results.into_iter().map(|(_, r)| r);
            let mut all_done = true;
            for (chunk, r) in hit.chunks(BULK).zip(results) {
                match r {
                    Ok(_) => {
                        for (_, u) in chunk {
                            *removed.entry(u.to_string()).or_default() += 1;
                        }
                    }
                    // One went away by itself meanwhile: the next read settles it.
                    Err(RouterError::Trap { message, .. }) if message.contains("no such item") => {
                        all_done = false
                    }
                    Err(e) => return Err(e),
                }
            }
            if all_done {
                break;
            }
        }
        Ok(removed)
    }

    /// Removes a hotspot user we manage (not a technician's own): true when it was there.
    pub async fn remove_user(&self, name: &str) -> Result<bool, RouterError> {
        let Some(row) = self.find(USER, name).await? else {
            return Ok(false);
        };
        if field(&row, "comment") != Some(MANAGED) {
            return Err(RouterError::Unconfirmed(format!(
                "hotspot user {name} is not managed by hotspot-edge; left alone"
            )));
        }
        let id = field(&row, ".id").unwrap_or(name).to_string();
        let _ = self
            .api
            .run(&Call::new(&format!("{USER}/remove")).attr(".id", id))
            .await;
        match self.find(USER, name).await? {
            None => Ok(true),
            Some(_) => Err(RouterError::Unconfirmed(format!(
                "hotspot user {name} still there after remove"
            ))),
        }
    }

    /// Removes one active row by id (a device that must not be online).
    pub async fn kick(&self, active_id: &str) -> Result<(), RouterError> {
        match self
            .api
            .run(&Call::new(&format!("{ACTIVE}/remove")).attr(".id", active_id))
            .await
        {
            Ok(_) => Ok(()),
            // Already gone: what we wanted.
            Err(RouterError::Trap { message, .. }) if message.contains("no such item") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn remove_where(&self, menu: &str, key: &str, value: &str) -> Result<usize, RouterError> {
        let rows = self
            .api
            .run(
                &Call::new(&format!("{menu}/print"))
                    .query(key, value)
                    .props(&[".id"]),
            )
            .await?;
        let ids: Vec<&str> = rows.iter().filter_map(|r| field(r, ".id")).collect();
        if ids.is_empty() {
            return Ok(0);
        }
        match self
            .api
            .run(&Call::new(&format!("{menu}/remove")).attr(".id", ids.join(",")))
            .await
        {
            Ok(_) => {}
            // One of them went away meanwhile (logged out by itself): the re-read settles it.
            Err(RouterError::Trap { message, .. }) if message.contains("no such item") => {}
            Err(e) => return Err(e),
        }
        Ok(ids.len())
    }

    pub async fn active(&self, server: Option<&str>) -> Result<Vec<ActiveSession>, RouterError> {
        let mut call = Call::new(&format!("{ACTIVE}/print")).props(ACTIVE_PROPS);
        // Filtered by the router (its CPU is far slower than ours, but sending every row of
        // another hotspot server costs it more).
        if let Some(want) = server.filter(|s| *s != "all") {
            call = call.query("server", want);
        }
        self.api.run_map(&call, |r| active_session(&r)).await
    }

    /// Logs a device in after a payment, as the portal would.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        mac: &str,
        ip: Option<&str>,
    ) -> Result<(), RouterError> {
        let mut call = Call::new(&format!("{ACTIVE}/login"))
            .attr("user", user)
            .attr("password", password)
            .attr("mac-address", mac);
        if let Some(ip) = ip {
            call = call.attr("ip", ip);
        }
        match self.api.run(&call).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_link() => Err(e),
            Err(e) => {
                // Confirm: perhaps it is logged in after all (or was already).
                let rows = self
                    .api
                    .run(
                        &Call::new(&format!("{ACTIVE}/print"))
                            .query("user", user)
                            .props(&["mac-address"]),
                    )
                    .await?;
                if rows.iter().any(|r| {
                    meaning::same(ACTIVE, "mac-address", mac, field(r, "mac-address"))
                        .unwrap_or(false)
                }) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    pub async fn health(&self) -> Result<Health, RouterError> {
        let identity = self.api.run(&Call::new("/system/identity/print")).await?;
        let resource = self.api.run(&Call::new("/system/resource/print")).await?;
        Ok(health(identity.first(), resource.first()))
    }

    /// The API user's group (a warning is due when it is `full`).
    pub async fn api_user_group(&self, user: &str) -> Result<Option<String>, RouterError> {
        let rows = self
            .api
            .run(&Call::new("/user/print").query("name", user))
            .await?;
        Ok(rows
            .first()
            .and_then(|r| field(r, "group").map(String::from)))
    }
}

impl crate::nas::Nas for RouterOsNas {
    fn ensure_profile(
        &self,
        p: &DesiredProfile,
    ) -> impl std::future::Future<Output = Result<(), RouterError>> + Send {
        RouterOsNas::ensure_profile(self, p)
    }
    fn upsert_user(
        &self,
        u: &DesiredUser,
    ) -> impl std::future::Future<Output = Result<(), RouterError>> + Send {
        RouterOsNas::upsert_user(self, u)
    }
    fn remove_user(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<bool, RouterError>> + Send {
        RouterOsNas::remove_user(self, name)
    }
    fn remove_cookies(
        &self,
        user: &str,
    ) -> impl std::future::Future<Output = Result<usize, RouterError>> + Send {
        RouterOsNas::remove_cookies(self, user)
    }
    fn disconnect(
        &self,
        user: &str,
    ) -> impl std::future::Future<Output = Result<usize, RouterError>> + Send {
        RouterOsNas::disconnect(self, user)
    }
    fn bulk_disconnect(
        &self,
        users: &HashSet<String>,
        disable: &HashSet<String>,
    ) -> impl std::future::Future<Output = Result<HashMap<String, (u32, u32)>, RouterError>> + Send
    {
        RouterOsNas::bulk_disconnect(self, users, disable)
    }
    fn kick(
        &self,
        session_id: &str,
    ) -> impl std::future::Future<Output = Result<(), RouterError>> + Send {
        RouterOsNas::kick(self, session_id)
    }
    fn active(
        &self,
        server: Option<&str>,
    ) -> impl std::future::Future<Output = Result<Vec<ActiveSession>, RouterError>> + Send {
        RouterOsNas::active(self, server)
    }
    fn login(
        &self,
        user: &str,
        password: &str,
        mac: &str,
        ip: Option<&str>,
    ) -> impl std::future::Future<Output = Result<(), RouterError>> + Send {
        RouterOsNas::login(self, user, password, mac, ip)
    }
    fn health(&self) -> impl std::future::Future<Output = Result<Health, RouterError>> + Send {
        RouterOsNas::health(self)
    }
}
