//! The simulated router's state and the semantics of the menus hotspot-edge uses. Sans I/O: a
//! sentence in, reply sentences out. docs/routeros-simulator.md says where it may differ from a
//! real router.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One row of a menu; `.id` is `*HEX` of `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: u32,
    pub fields: BTreeMap<String, String>,
}

impl Row {
    pub fn get(&self, k: &str) -> Option<&str> {
        if k == ".id" {
            return None;
        }
        self.fields.get(k).map(String::as_str)
    }
    pub fn id_str(&self) -> String {
        format!("*{:X}", self.id)
    }
    /// When an active row logged in (simulated ms).
    fn login_at(&self) -> i64 {
        self.get("~login-at")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
    fn num(&self, k: &str) -> u64 {
        self.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
    /// An active row's counters grow (upload is bytes-in, from the router's view).
    fn add_traffic(&mut self, upload: u64, download: u64) {
        let bi = self.num("bytes-in") + upload;
        let bo = self.num("bytes-out") + download;
        self.fields.insert("bytes-in".into(), bi.to_string());
        self.fields.insert("bytes-out".into(), bo.to_string());
    }
}

/// Rows in id order (ids only grow), with an index on `name` so that a router with 10,000
/// hotspot users answers `print ?name=` without a scan.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub rows: Vec<Row>,
    next: u32,
    names: HashMap<String, u32>,
    /// Rows by their `user` field (active sessions, cookies).
    users: HashMap<String, Vec<u32>>,
}

impl Table {
    fn insert(&mut self, fields: BTreeMap<String, String>) -> u32 {
        self.next += 1;
        let id = self.next;
        if let Some(n) = fields.get("name") {
            self.names.insert(n.clone(), id);
        }
        if let Some(u) = fields.get("user") {
            self.users.entry(u.clone()).or_default().push(id);
        }
        self.rows.push(Row { id, fields });
        id
    }

    fn unindex(&mut self, r: &Row) {
        if let Some(n) = r.get("name") {
            self.names.remove(n);
        }
        if let Some(u) = r.get("user") {
            if let Some(ids) = self.users.get_mut(u) {
                ids.retain(|i| *i != r.id);
                if ids.is_empty() {
                    self.users.remove(u);
                }
            }
        }
    }

    /// Rows whose `user` is `user`, via the index.
    pub fn of_user(&self, user: &str) -> Vec<&Row> {
        self.users
            .get(user)
            .map(|ids| ids.iter().filter_map(|id| self.find(*id)).collect())
            .unwrap_or_default()
    }

    fn pos(&self, id: u32) -> Option<usize> {
        self.rows.binary_search_by_key(&id, |r| r.id).ok()
    }
    pub fn find(&self, id: u32) -> Option<&Row> {
        self.pos(id).map(|i| &self.rows[i])
    }
    fn find_mut(&mut self, id: u32) -> Option<&mut Row> {
        self.pos(id).map(|i| &mut self.rows[i])
    }
    fn remove_id(&mut self, id: u32) -> Option<Row> {
        let row = self.rows.remove(self.pos(id)?);
        self.unindex(&row);
        Some(row)
    }
    /// Removes many rows in one pass (a bulk `remove` of thousands must not shift the rows once
    /// per id).
    fn remove_ids(&mut self, ids: &HashSet<u32>) -> Vec<Row> {
        let mut gone = Vec::new();
        self.rows.retain(|r| {
            if ids.contains(&r.id) {
                gone.push(r.clone());
                false
            } else {
                true
            }
        });
        for r in &gone {
            self.unindex(r);
        }
        gone
    }

    fn set_field(&mut self, id: u32, k: &str, v: &str) {
        if k == "name" {
            if let Some(old) = self.find(id).and_then(|r| r.get("name")).map(String::from) {
                self.names.remove(&old);
            }
            self.names.insert(v.to_string(), id);
        }
        if let Some(r) = self.find_mut(id) {
            r.fields.insert(k.to_string(), v.to_string());
        }
    }
    fn unset_field(&mut self, id: u32, k: &str) {
        if let Some(r) = self.find_mut(id) {
            r.fields.remove(k);
        }
    }

    /// The row whose `field` is `value`: by index for `name` (rows change only through `Table`'s
    /// methods, which keep the index), by scan otherwise.
    pub fn by(&self, field: &str, value: &str) -> Option<&Row> {
        if field == "name" {
            return self.names.get(value).and_then(|id| self.find(*id));
        }
        self.rows.iter().find(|r| r.get(field) == Some(value))
    }
}

/// A reply sentence, without its tag.
pub type Sentence = Vec<String>;

/// How the simulated router prints values (docs/routeros-simulator.md has the sources). Values are
/// stored as the router would print them, never as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrintForms {
    /// RouterOS 7: booleans `true`/`false`, durations `1d2h3m`, a limit at its "no limit" default
    /// left out of the reply, upper-case MACs, rate limits in the largest exact unit.
    #[default]
    V7,
    /// The older forms sources show (RouterOS 6.49 and before): booleans `yes`/`no`, durations
    /// `1d02:03:00`, defaults printed (`0s`, `0`, `00:00:00:00:00:00`).
    V6,
}

impl PrintForms {
    pub fn parse(t: &str) -> Option<PrintForms> {
        match t {
            "7" | "v7" => Some(PrintForms::V7),
            "6" | "v6" | "6.49" => Some(PrintForms::V6),
            _ => None,
        }
    }

    fn bool(self, b: bool) -> String {
        match (self, b) {
            (PrintForms::V7, true) => "true",
            (PrintForms::V7, false) => "false",
            (PrintForms::V6, true) => "yes",
            (PrintForms::V6, false) => "no",
        }
        .into()
    }

    fn duration(self, ms: i64) -> String {
        match self {
            PrintForms::V7 => crate::routeros::format::format_duration(ms.max(0) / 1000 * 1000),
            PrintForms::V6 => {
                let s = ms.max(0) / 1000;
                let (w, d) = (s / 604_800, s % 604_800 / 86_400);
                let clock = format!(
                    "{:02}:{:02}:{:02}",
                    s % 86_400 / 3600,
                    s % 3600 / 60,
                    s % 60
                );
                match (w, d) {
                    (0, 0) => clock,
                    (0, d) => format!("{d}d{clock}"),
                    (w, 0) => format!("{w}w{clock}"),
                    (w, d) => format!("{w}w{d}d{clock}"),
                }
            }
        }
    }

    /// The value `v` written to `field` as this router stores and prints it; `None`: left out
    /// of the reply (a "no limit" default in RouterOS 7). `v` has passed `check_fields`.
    fn normalise(self, field: &str, v: &str) -> Option<String> {
        use crate::routeros::meaning::{format_mac, kind_of, parse_mac, Kind, RateLimit};
        let v7 = self == PrintForms::V7;
        // The field's type decides its form; the menu matters to `kind_of` only for passwords,
        // which the simulator stores as written.
        match kind_of("", field) {
            Kind::Bool => Some(self.bool(matches!(v, "yes" | "true"))),
            Kind::LimitDuration => {
                let ms = parse_dur(v).unwrap_or(0);
                match (ms, field) {
                    (0, "idle-timeout" | "keepalive-timeout") if v7 => Some("none".into()),
                    (0, "limit-uptime") if v7 => None,
                    (ms, _) => Some(self.duration(ms)),
                }
            }
            Kind::LimitBytes => match v.parse::<u64>().unwrap_or(0) {
                0 if v7 => None,
                n => Some(n.to_string()),
            },
            Kind::Mac => match parse_mac(v) {
                Some([0, 0, 0, 0, 0, 0]) if v7 => None,
                Some(mac) => Some(format_mac(mac)),
                None => Some(v.to_string()),
            },
            Kind::RateLimit => Some(
                RateLimit::parse(v)
                    .map(|r| r.format())
                    .unwrap_or_else(|_| v.to_string()),
            ),
            _ => Some(v.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiUser {
    pub name: String,
    pub password: String,
    pub group: String,
}

/// Fields each writable menu accepts (RouterOS rejects others with "unknown parameter").
const USER_FIELDS: &[&str] = &[
    "name",
    "password",
    "profile",
    "server",
    "mac-address",
    "address",
    "email",
    "comment",
    "disabled",
    "limit-uptime",
    "limit-bytes-in",
    "limit-bytes-out",
    "limit-bytes-total",
];
const PROFILE_FIELDS: &[&str] = &[
    "name",
    "rate-limit",
    "shared-users",
    "session-timeout",
    "idle-timeout",
    "keepalive-timeout",
    "add-mac-cookie",
    "mac-cookie-timeout",
    "address-list",
    "comment",
    "status-autorefresh",
    "open-status-page",
    "transparent-proxy",
];

/// What a new user profile carries unless given, as RouterOS documents its defaults:
/// `add-mac-cookie` yes (a RouterOS 6.23 export, which omits defaults, writes
/// `set [ find default=yes ] add-mac-cookie=no`: pastebin.com/aqCpLfXV; a 2018 export writes
/// `add add-mac-cookie=no` on its profiles: pastebin.com/Fc7tYkE0),
/// `idle-timeout` none and `open-status-page` always (wiki Manual:IP/Hotspot/User, user profile;
/// RouterOS v2.9 manual), `keepalive-timeout` 2m (mikrotikdocs.fyi, a third-party digest),
/// `shared-users` 1 (wiki). `mac-cookie-timeout` 3d and `status-autorefresh` 1m are the values a
/// recorded RouterOS 7 profile prints (terraform-provider-routeros); no source states them as
/// defaults. docs/routeros-simulator.md has the table.
const PROFILE_DEFAULTS: &[(&str, &str)] = &[
    ("add-mac-cookie", "yes"),
    ("idle-timeout", "none"),
    ("keepalive-timeout", "2m"),
    ("mac-cookie-timeout", "3d"),
    ("shared-users", "1"),
    ("status-autorefresh", "1m"),
    ("open-status-page", "always"),
];

#[derive(Debug, Clone)]
pub struct Model {
    pub users: Table,
    pub profiles: Table,
    pub active: Table,
    pub cookies: Table,
    pub api_users: Vec<ApiUser>,
    pub identity: String,
    pub version: String,
    pub board: String,
    pub server: String,
    /// Simulated milliseconds; moved by [`Model::advance`].
    pub now_ms: i64,
    /// Answer an empty `print` with `!empty` before `!done` (RouterOS 7.18+).
    pub empty_reply: bool,
    /// How values are printed (RouterOS 7 or the older forms).
    pub forms: PrintForms,
    /// Print hotspot users without their `password`, as RouterOS does for an API user whose
    /// group lacks the `sensitive` policy (the group `routeros-script` creates).
    pub hide_secrets: bool,
    /// A fault: every row of a menu (first) prints this field (second) as this value (third),
    /// whatever was written (a router build that prints a form nobody has seen).
    pub print_override: Vec<(String, String, String)>,
    /// When set, every login and logout is recorded here with the wall-clock time (ms), for
    /// measuring enforcement lag from outside.
    pub event_log: Option<Vec<(&'static str, String, i64)>>,
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Default for Model {
    fn default() -> Self {
        Model::with_forms(PrintForms::V7)
    }
}

impl Model {
    /// A router of that generation: its version string, and its `default` profile printed in
    /// its forms.
    pub fn with_forms(forms: PrintForms) -> Self {
        let mut profiles = Table::default();
        let mut default_profile = BTreeMap::from([("name".to_string(), "default".to_string())]);
        for (k, v) in PROFILE_DEFAULTS {
            if let Some(v) = forms.normalise(k, v) {
                default_profile.insert(k.to_string(), v);
            }
        }
        profiles.insert(default_profile);
        Model {
            users: Table::default(),
            profiles,
            active: Table::default(),
            cookies: Table::default(),
            api_users: vec![ApiUser {
                name: "admin".into(),
                password: String::new(),
                group: "full".into(),
            }],
            identity: "sim-router".into(),
            version: match forms {
                PrintForms::V7 => "7.16.2 (stable)".into(),
                PrintForms::V6 => "6.49.17 (long-term)".into(),
            },
            board: "hAP ac2 (simulated)".into(),
            server: "hotspot1".into(),
            now_ms: 0,
            empty_reply: false,
            forms,
            print_override: Vec::new(),
            hide_secrets: false,
            event_log: None,
        }
    }
}

fn trap(message: &str) -> Vec<Sentence> {
    vec![
        vec!["!trap".into(), format!("=message={message}")],
        vec!["!done".into()],
    ]
}

fn parse_id(s: &str) -> Option<u32> {
    u32::from_str_radix(s.strip_prefix('*')?, 16).ok()
}

/// A parsed request: command path, `=k=v` attributes, `?` query words, `.proplist`.
#[derive(Debug, Default)]
pub struct Request {
    pub command: String,
    pub attrs: BTreeMap<String, String>,
    pub queries: Vec<String>,
    pub proplist: Option<Vec<String>>,
}

impl Request {
    pub fn parse(words: &[String]) -> Request {
        let mut r = Request {
            command: words.first().cloned().unwrap_or_default(),
            ..Default::default()
        };
        for w in &words[1.min(words.len())..] {
            if let Some(q) = w.strip_prefix('?') {
                r.queries.push(q.to_string());
            } else if let Some(a) = w.strip_prefix('=') {
                let (k, v) = a.split_once('=').unwrap_or((a, ""));
                if k == ".proplist" {
                    r.proplist = Some(v.split(',').map(String::from).collect());
                } else {
                    r.attrs.insert(k.to_string(), v.to_string());
                }
            }
        }
        r
    }
}

impl Model {
    pub fn add_api_user(&mut self, name: &str, password: &str, group: &str) {
        self.api_users.retain(|u| u.name != name);
        self.api_users.push(ApiUser {
            name: name.into(),
            password: password.into(),
            group: group.into(),
        });
    }

    pub fn login_ok(&self, name: &str, password: &str) -> bool {
        self.api_users
            .iter()
            .any(|u| u.name == name && u.password == password)
    }

    /// Handles one command sentence (after login) and returns the reply sentences, untagged.
    pub fn handle(&mut self, req: &Request) -> Vec<Sentence> {
        let cmd = req.command.as_str();
        match cmd {
            "/ip/hotspot/active/login" => return self.active_login(req),
            "/system/resource/print" => return self.print_rows(req, &[self.resource_row()]),
            "/system/identity/print" => {
                let row = Row {
                    id: 0,
                    fields: BTreeMap::from([("name".into(), self.identity.clone())]),
                };
                return self.print_rows(req, &[row]);
            }
            "/ip/service/print" => return self.print_rows(req, &self.service_rows()),
            "/ip/hotspot/host/print" => return self.print_rows(req, &self.host_rows()),
            "/user/print" => {
                let rows: Vec<Row> = self
                    .api_users
                    .iter()
                    .enumerate()
                    .map(|(i, u)| Row {
                        id: i as u32 + 1,
                        fields: BTreeMap::from([
                            ("name".into(), u.name.clone()),
                            ("group".into(), u.group.clone()),
                        ]),
                    })
                    .collect();
                return self.print_rows(req, &rows);
            }
            _ => {}
        }
        let Some((menu, verb)) = cmd.rsplit_once('/') else {
            return trap("no such command");
        };
        match menu {
            "/ip/hotspot/user"
            | "/ip/hotspot/user/profile"
            | "/ip/hotspot/active"
            | "/ip/hotspot/cookie" => {}
            _ => return trap("no such command prefix"),
        }
        match verb {
            "print" => {
                let mut rows = self.rows_for_print(menu, &req.queries);
                if self.hide_secrets && menu == "/ip/hotspot/user" {
                    for r in &mut rows {
                        r.fields.remove("password");
                    }
                }
                for (m, field, value) in &self.print_override {
                    if m == menu {
                        for r in &mut rows {
                            r.fields.insert(field.clone(), value.clone());
                        }
                    }
                }
                self.print_rows(req, &rows)
            }
            "add" => self.add(menu, req),
            "set" => self.set(menu, req),
            "remove" => self.remove(menu, req),
            "enable" | "disable" if menu.starts_with("/ip/hotspot/user") => {
                let mut r = Request {
                    command: format!("{menu}/set"),
                    attrs: req.attrs.clone(),
                    ..Default::default()
                };
                r.attrs.insert(
                    "disabled".into(),
                    if verb == "disable" { "true" } else { "false" }.into(),
                );
                self.set(menu, &r)
            }
            "reset-counters" if menu == "/ip/hotspot/user" => {
                let ids = match self.target_ids(menu, req) {
                    Ok(ids) => ids,
                    Err(e) => return e,
                };
                for id in ids {
                    if let Some(u) = self.users.find_mut(id) {
                        for k in ["uptime-ms", "bytes-in", "bytes-out"] {
                            u.fields.insert(k.into(), "0".into());
                        }
                    }
                }
                vec![vec!["!done".into()]]
            }
            _ => trap("no such command"),
        }
    }

    fn table(&self, menu: &str) -> &Table {
        match menu {
            "/ip/hotspot/user" => &self.users,
            "/ip/hotspot/user/profile" => &self.profiles,
            "/ip/hotspot/active" => &self.active,
            _ => &self.cookies,
        }
    }

    fn table_mut(&mut self, menu: &str) -> &mut Table {
        match menu {
            "/ip/hotspot/user" => &mut self.users,
            "/ip/hotspot/user/profile" => &mut self.profiles,
            "/ip/hotspot/active" => &mut self.active,
            _ => &mut self.cookies,
        }
    }

    /// `/ip/service`: RouterOS 7's services with their default ports (the API user's menu for
    /// checking that plain `api` is off).
    fn service_rows(&self) -> Vec<Row> {
        let f = self.forms;
        [
            ("telnet", "23"),
            ("ftp", "21"),
            ("www", "80"),
            ("ssh", "22"),
            ("www-ssl", "443"),
            ("api", "8728"),
            ("winbox", "8291"),
            ("api-ssl", "8729"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (name, port))| {
            let mut fields = BTreeMap::from([
                ("name".to_string(), name.to_string()),
                ("port".to_string(), port.to_string()),
                ("address".to_string(), String::new()),
                ("disabled".to_string(), f.bool(false)),
                ("invalid".to_string(), f.bool(false)),
                ("vrf".to_string(), "main".to_string()),
            ]);
            if name.ends_with("-ssl") {
                fields.insert("certificate".into(), "none".into());
                fields.insert("tls-version".into(), "any".into());
            }
            // `.id` *0 is RouterOS's own for the first service; ours start at 1 (0 = no id).
            Row {
                id: i as u32 + 1,
                fields,
            }
        })
        .collect()
    }

    /// `/ip/hotspot/host`: every device behind the hotspot; here, those logged in.
    fn host_rows(&self) -> Vec<Row> {
        self.active
            .rows
            .iter()
            .map(|a| {
                let login = a.login_at();
                let mut fields = BTreeMap::new();
                for k in ["mac-address", "address", "server", "bytes-in", "bytes-out"] {
                    fields.insert(k.to_string(), a.get(k).unwrap_or("").to_string());
                }
                fields.insert("to-address".into(), a.get("address").unwrap_or("").into());
                fields.insert("uptime".into(), self.forms.duration(self.now_ms - login));
                fields.insert("authorized".into(), self.forms.bool(true));
                fields.insert("bypassed".into(), self.forms.bool(false));
                Row { id: a.id, fields }
            })
            .collect()
    }

    fn resource_row(&self) -> Row {
        Row {
            id: 0,
            fields: BTreeMap::from([
                ("uptime".into(), self.forms.duration(self.now_ms)),
                ("version".into(), self.version.clone()),
                ("board-name".into(), self.board.clone()),
                ("cpu-load".into(), "3".into()),
                ("free-memory".into(), "201326592".into()),
                ("total-memory".into(), "268435456".into()),
                ("architecture-name".into(), "arm".into()),
                ("build-time".into(), "Jun/15/2023 05:17:29".into()),
                ("cpu".into(), "ARMv7".into()),
                ("cpu-count".into(), "4".into()),
                ("cpu-frequency".into(), "716".into()),
                ("free-hdd-space".into(), "2625536".into()),
                ("total-hdd-space".into(), "16777216".into()),
                ("platform".into(), "MikroTik".into()),
            ]),
        }
    }

    /// Rows as `print` shows them, read-only fields computed. A leading `?name=` or `?user=`
    /// query narrows the rows first (the full query is still applied by `print_rows`).
    fn rows_for_print(&self, menu: &str, queries: &[String]) -> Vec<Row> {
        let table = self.table(menu);
        let narrowed: Vec<&Row> = match queries.first().and_then(|q| q.split_once('=')) {
            Some(("name", v)) if queries.len() == 1 => table.by("name", v).into_iter().collect(),
            Some(("user", v)) if queries.len() == 1 => table
                .rows
                .iter()
                .filter(|r| r.get("user") == Some(v))
                .collect(),
            _ => table.rows.iter().collect(),
        };
        // Per-user sums of the active sessions, once per print, for the users shown only.
        let mut live: HashMap<&str, (i64, u64, u64)> = HashMap::new();
        let who: HashSet<&str> = match menu {
            "/ip/hotspot/user" => narrowed.iter().filter_map(|u| u.get("name")).collect(),
            "/ip/hotspot/active" => narrowed.iter().filter_map(|a| a.get("user")).collect(),
            _ => HashSet::new(),
        };
        let shown: Vec<&Row> =
            if menu == "/ip/hotspot/active" && narrowed.len() == self.active.rows.len() {
                self.active.rows.iter().collect()
            } else {
                who.iter().flat_map(|u| self.active.of_user(u)).collect()
            };
        for a in shown {
            let login = a.login_at();
            let e = live.entry(a.get("user").unwrap_or("")).or_default();
            e.0 += self.now_ms - login;
            e.1 += a.num("bytes-in");
            e.2 += a.num("bytes-out");
        }
        let totals = |u: &Row| {
            let (up, bi, bo) = live
                .get(u.get("name").unwrap_or(""))
                .copied()
                .unwrap_or_default();
            (
                i64::try_from(u.num("uptime-ms"))
                    .unwrap_or(i64::MAX)
                    .saturating_add(up),
                u.num("bytes-in") + bi,
                u.num("bytes-out") + bo,
            )
        };
        match menu {
            "/ip/hotspot/user" => narrowed
                .into_iter()
                .map(|u| {
                    let mut r = u.clone();
                    let (up, bi, bo) = totals(u);
                    r.fields.remove("uptime-ms");
                    r.fields.insert("uptime".into(), self.forms.duration(up));
                    r.fields.insert("bytes-in".into(), bi.to_string());
                    r.fields.insert("bytes-out".into(), bo.to_string());
                    r.fields
                        .insert("packets-in".into(), packets(bi).to_string());
                    r.fields
                        .insert("packets-out".into(), packets(bo).to_string());
                    r.fields
                        .entry("disabled".into())
                        .or_insert_with(|| self.forms.bool(false));
                    r.fields
                        .entry("dynamic".into())
                        .or_insert_with(|| self.forms.bool(false));
                    r
                })
                .collect(),
            "/ip/hotspot/active" => narrowed
                .into_iter()
                .map(|a| {
                    let mut r = a.clone();
                    let login = a.login_at();
                    r.fields.retain(|k, _| !k.starts_with('~'));
                    r.fields
                        .insert("uptime".into(), self.forms.duration(self.now_ms - login));
                    r.fields.insert("idle-time".into(), self.forms.duration(0));
                    r.fields.insert("radius".into(), self.forms.bool(false));
                    for (bytes, packets_key) in
                        [("bytes-in", "packets-in"), ("bytes-out", "packets-out")]
                    {
                        let n = packets(a.num(bytes));
                        r.fields.insert(packets_key.into(), n.to_string());
                    }
                    if let Some(u) = a.get("user").and_then(|n| self.users.by("name", n)) {
                        if let Some(limit) = u.get("limit-uptime").and_then(parse_dur) {
                            let (used, _, _) = totals(u);
                            r.fields.insert(
                                "session-time-left".into(),
                                self.forms.duration((limit - used).max(0)),
                            );
                        }
                    }
                    r
                })
                .collect(),
            _ => narrowed.into_iter().cloned().collect(),
        }
    }

    /// A user's cumulative uptime (ms) and bytes, closed sessions plus the active ones.
    /// (Saturating only so that a client writing absurd values cannot crash the simulator; it
    /// models no RouterOS behaviour, and no real counter gets near `i64::MAX` ms.)
    fn user_totals(&self, u: &Row) -> (i64, u64, u64) {
        let mut up = i64::try_from(u.num("uptime-ms")).unwrap_or(i64::MAX);
        let (mut bi, mut bo) = (u.num("bytes-in"), u.num("bytes-out"));
        let name = u.get("name").unwrap_or("");
        for a in self
            .active
            .rows
            .iter()
            .filter(|a| a.get("user") == Some(name))
        {
            let login = a.login_at();
            up += self.now_ms - login;
            bi += a.num("bytes-in");
            bo += a.num("bytes-out");
        }
        (up, bi, bo)
    }

    fn print_rows(&self, req: &Request, rows: &[Row]) -> Vec<Sentence> {
        let mut out = Vec::new();
        for r in rows {
            match matches(r, &req.queries) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return trap(&e),
            }
            let mut s = vec!["!re".to_string()];
            let wanted = |k: &str| {
                req.proplist
                    .as_ref()
                    .is_none_or(|p| p.iter().any(|x| x == k))
            };
            if r.id != 0 && wanted(".id") {
                s.push(format!("=.id={}", r.id_str()));
            }
            for (k, v) in &r.fields {
                if !k.starts_with('~') && wanted(k) {
                    s.push(format!("={k}={v}"));
                }
            }
            out.push(s);
        }
        if out.is_empty() && self.empty_reply {
            out.push(vec!["!empty".into()]);
        }
        out.push(vec!["!done".into()]);
        out
    }

    fn check_fields(menu: &str, attrs: &BTreeMap<String, String>) -> Result<(), String> {
        let allowed = match menu {
            "/ip/hotspot/user" => USER_FIELDS,
            "/ip/hotspot/user/profile" => PROFILE_FIELDS,
            _ => return Err("not allowed".into()),
        };
        for k in attrs.keys() {
            if k != ".id" && k != "numbers" && !allowed.contains(&k.as_str()) {
                return Err(format!("unknown parameter {k}"));
            }
        }
        for (k, v) in attrs {
            let ok = match k.as_str() {
                "limit-uptime" | "session-timeout" | "idle-timeout" | "keepalive-timeout" => {
                    v == "none" || parse_dur(v).is_some()
                }
                "limit-bytes-in" | "limit-bytes-out" | "limit-bytes-total" => {
                    v.parse::<u64>().is_ok()
                }
                "shared-users" => v == "unlimited" || v.parse::<u32>().is_ok_and(|n| n >= 1),
                "disabled" | "add-mac-cookie" => {
                    matches!(v.as_str(), "yes" | "no" | "true" | "false")
                }
                "mac-address" => v.len() == 17 && v.split(':').count() == 6,
                _ => true,
            };
            if !ok {
                return Err(format!("value of {k} is invalid: {v}"));
            }
        }
        Ok(())
    }

    fn add(&mut self, menu: &str, req: &Request) -> Vec<Sentence> {
        if let Err(e) = Self::check_fields(menu, &req.attrs) {
            return trap(&e);
        }
        let Some(name) = req.attrs.get("name").filter(|n| !n.is_empty()) else {
            return trap("failure: name is required");
        };
        if self.table(menu).by("name", name).is_some() {
            let what = if menu.ends_with("profile") {
                "profile"
            } else {
                "user"
            };
            return trap(&format!("failure: already have {what} with this name"));
        }
        if let Some(p) = req.attrs.get("profile") {
            if self.profiles.by("name", p).is_none() {
                return trap(&format!("input does not match any value of profile: {p}"));
            }
        }
        let forms = self.forms;
        let mut fields: BTreeMap<String, String> = req
            .attrs
            .iter()
            .filter(|(k, _)| *k != ".id")
            .filter_map(|(k, v)| Some((k.clone(), forms.normalise(k, v)?)))
            .collect();
        if menu == "/ip/hotspot/user/profile" {
            for (k, v) in PROFILE_DEFAULTS {
                if !fields.contains_key(*k) {
                    if let Some(v) = forms.normalise(k, v) {
                        fields.insert(k.to_string(), v);
                    }
                }
            }
        }
        if menu == "/ip/hotspot/user" {
            fields.entry("profile".into()).or_insert("default".into());
            fields.entry("server".into()).or_insert("all".into());
        }
        let id = self.table_mut(menu).insert(fields);
        vec![vec!["!done".into(), format!("=ret=*{id:X}")]]
    }

    /// Ids named by `=.id=` or `=numbers=` (comma-separated `*HEX`, or names).
    fn target_ids(&self, menu: &str, req: &Request) -> Result<Vec<u32>, Vec<Sentence>> {
        let spec = req
            .attrs
            .get(".id")
            .or_else(|| req.attrs.get("numbers"))
            .ok_or_else(|| trap("no such item"))?;
        let mut ids = Vec::new();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let row = match parse_id(part) {
                Some(id) => self.table(menu).find(id),
                None => self.table(menu).by("name", part),
            };
            match row {
                Some(r) => ids.push(r.id),
                None => return Err(trap("no such item")),
            }
        }
        if ids.is_empty() {
            return Err(trap("no such item"));
        }
        Ok(ids)
    }

    fn set(&mut self, menu: &str, req: &Request) -> Vec<Sentence> {
        if menu == "/ip/hotspot/active" || menu == "/ip/hotspot/cookie" {
            return trap("no such command");
        }
        if let Err(e) = Self::check_fields(menu, &req.attrs) {
            return trap(&e);
        }
        let ids = match self.target_ids(menu, req) {
            Ok(ids) => ids,
            Err(e) => return e,
        };
        if let Some(name) = req.attrs.get("name") {
            if self
                .table(menu)
                .rows
                .iter()
                .any(|r| r.get("name") == Some(name) && !ids.contains(&r.id))
            {
                return trap("failure: already have user with this name");
            }
        }
        if let Some(p) = req.attrs.get("profile") {
            if self.profiles.by("name", p).is_none() {
                return trap(&format!("input does not match any value of profile: {p}"));
            }
        }
        let forms = self.forms;
        for id in ids {
            for (k, v) in &req.attrs {
                if k != ".id" && k != "numbers" {
                    match forms.normalise(k, v) {
                        Some(v) => self.table_mut(menu).set_field(id, k, &v),
                        None => self.table_mut(menu).unset_field(id, k),
                    }
                }
            }
        }
        vec![vec!["!done".into()]]
    }

    fn remove(&mut self, menu: &str, req: &Request) -> Vec<Sentence> {
        let ids = match self.target_ids(menu, req) {
            Ok(ids) => ids,
            Err(e) => return e,
        };
        let set: HashSet<u32> = ids.into_iter().collect();
        let gone = self.table_mut(menu).remove_ids(&set);
        if menu == "/ip/hotspot/active" {
            for a in gone {
                self.account_logout(a);
            }
        }
        vec![vec!["!done".into()]]
    }

    /// Ends an active session: its counters go into the user's cumulative ones.
    pub fn logout(&mut self, active_id: u32) -> Option<Row> {
        let a = self.active.remove_id(active_id)?;
        Some(self.account_logout(a))
    }

    /// A removed active row's counters go into the user's cumulative ones.
    fn account_logout(&mut self, a: Row) -> Row {
        if let Some(log) = &mut self.event_log {
            log.push(("logout", a.get("user").unwrap_or("").to_string(), wall_ms()));
        }
        let login = a.login_at();
        let up = self.now_ms - login;
        if let Some(name) = a.get("user") {
            // By the name index: a burst logs out thousands, each must not scan every user.
            let uid = self.users.by("name", name).map(|u| u.id);
            if let Some(u) = uid.and_then(|id| self.users.find_mut(id)) {
                let add = |u: &mut Row, k: &str, v: u64| {
                    let cur = u.num(k);
                    u.fields.insert(k.into(), (cur + v).to_string());
                };
                add(u, "uptime-ms", crate::units::non_negative(up));
                add(u, "bytes-in", a.num("bytes-in"));
                add(u, "bytes-out", a.num("bytes-out"));
            }
        }
        a
    }

    /// Why `name` may not log in now, if anything stops it.
    fn refuse_login(&self, name: &str) -> Option<String> {
        let Some(u) = self.users.by("name", name) else {
            return Some("invalid username or password".into());
        };
        if matches!(u.get("disabled"), Some("yes" | "true")) {
            return Some("user is disabled".into());
        }
        let (up, bi, bo) = self.user_totals(u);
        if u.get("limit-uptime")
            .and_then(parse_dur)
            .is_some_and(|l| up >= l)
        {
            return Some("uptime limit reached".into());
        }
        if u.get("limit-bytes-total")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|l| l > 0 && bi + bo >= l)
        {
            return Some("traffic limit reached".into());
        }
        let profile = self
            .profiles
            .by("name", u.get("profile").unwrap_or("default"));
        let shared = profile
            .and_then(|p| p.get("shared-users"))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        let logged = self
            .active
            .rows
            .iter()
            .filter(|a| a.get("user") == Some(name))
            .count();
        if logged >= shared {
            return Some(format!("no more sessions are allowed for user {name}"));
        }
        None
    }

    fn mac_allowed(u: &Row, mac: &str) -> bool {
        match u.get("mac-address") {
            Some(bound) if bound != "00:00:00:00:00:00" => bound.eq_ignore_ascii_case(mac),
            _ => true,
        }
    }

    /// `/ip/hotspot/active/login`: what the portal does after a payment.
    fn active_login(&mut self, req: &Request) -> Vec<Sentence> {
        let a = &req.attrs;
        let (Some(user), Some(mac)) = (a.get("user"), a.get("mac-address")) else {
            return trap("user and mac-address are required");
        };
        let Some(u) = self.users.by("name", user) else {
            return trap("invalid username or password");
        };
        if u.get("password").unwrap_or("") != a.get("password").map(String::as_str).unwrap_or("") {
            return trap("invalid username or password");
        }
        if !Self::mac_allowed(u, mac) {
            return trap("not allowed for this MAC address");
        }
        if let Some(why) = self.refuse_login(user) {
            return trap(&why);
        }
        let ip = a.get("ip").cloned().unwrap_or_else(|| "10.5.50.2".into());
        self.admit(user, mac, &ip, "http-chap");
        vec![vec!["!done".into()]]
    }

    fn admit(&mut self, user: &str, mac: &str, ip: &str, by: &str) -> u32 {
        if let Some(log) = &mut self.event_log {
            log.push(("login", user.to_string(), wall_ms()));
        }
        let now = self.now_ms;
        let id = self.active.insert(BTreeMap::from([
            ("server".into(), self.server.clone()),
            ("user".into(), user.into()),
            ("address".into(), ip.into()),
            ("mac-address".into(), mac.to_ascii_uppercase()),
            ("login-by".into(), by.into()),
            ("bytes-in".into(), "0".into()),
            ("bytes-out".into(), "0".into()),
            ("~login-at".into(), now.to_string()),
        ]));
        let cookie_on = self
            .users
            .by("name", user)
            .and_then(|u| {
                self.profiles
                    .by("name", u.get("profile").unwrap_or("default"))
            })
            .is_none_or(|p| !matches!(p.get("add-mac-cookie"), Some("no" | "false")));
        if cookie_on && by != "cookie" {
            let mac_u = mac.to_ascii_uppercase();
            let old: HashSet<u32> = self
                .cookies
                .rows
                .iter()
                .filter(|c| c.get("mac-address") == Some(mac_u.as_str()))
                .map(|c| c.id)
                .collect();
            self.cookies.remove_ids(&old);
            self.cookies.insert(BTreeMap::from([
                ("user".into(), user.into()),
                ("mac-address".into(), mac.to_ascii_uppercase()),
                ("expires-in".into(), "3d".into()),
            ]));
        }
        id
    }

    /// A device comes back to the hotspot: a MAC cookie logs it in again unless the cookie was
    /// removed or the user cannot log in. Returns the new active id.
    pub fn device_returns(&mut self, mac: &str, ip: &str) -> Option<u32> {
        let mac = mac.to_ascii_uppercase();
        if self.active.by("mac-address", &mac).is_some() {
            return None;
        }
        let user = self
            .cookies
            .by("mac-address", &mac)?
            .get("user")?
            .to_string();
        if self.refuse_login(&user).is_some() {
            return None;
        }
        Some(self.admit(&user, &mac, ip, "cookie"))
    }

    /// A device logs in at the portal with user name and password (like a customer typing a
    /// voucher code). Returns the active id, or why not.
    pub fn portal_login(
        &mut self,
        user: &str,
        password: &str,
        mac: &str,
        ip: &str,
    ) -> Result<u32, String> {
        let u = self
            .users
            .by("name", user)
            .ok_or("invalid username or password")?;
        if u.get("password").unwrap_or("") != password {
            return Err("invalid username or password".into());
        }
        if !Self::mac_allowed(u, mac) {
            return Err("not allowed for this MAC address".into());
        }
        if let Some(why) = self.refuse_login(user) {
            return Err(why);
        }
        Ok(self.admit(user, mac, ip, "http-chap"))
    }

    /// Traffic of the device with this MAC (upload = bytes-in, from the router's view).
    pub fn traffic(&mut self, mac: &str, upload: u64, download: u64) -> bool {
        let mac = mac.to_ascii_uppercase();
        let Some(a) = self
            .active
            .rows
            .iter_mut()
            .find(|a| a.get("mac-address") == Some(&mac))
        else {
            return false;
        };
        a.add_traffic(upload, download);
        self.enforce_limits();
        true
    }

    /// The same traffic on every logged-in device, then one pass of the router's limits (per
    /// device, that pass would make a second of traffic quadratic in the devices online).
    pub fn traffic_all(&mut self, upload: u64, download: u64) {
        for a in &mut self.active.rows {
            a.add_traffic(upload, download);
        }
        self.enforce_limits();
    }

    /// Simulated time passes.
    pub fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
        self.enforce_limits();
    }

    /// Logs out the sessions whose user has reached `limit-uptime` or `limit-bytes-total`, as
    /// the router itself does. One pass to sum each user's sessions, then the users over a limit.
    pub fn enforce_limits(&mut self) -> Vec<Row> {
        let mut live: HashMap<String, (i64, u64, u64)> = HashMap::new();
        for a in &self.active.rows {
            let login = a.login_at();
            let e = live
                .entry(a.get("user").unwrap_or("").to_string())
                .or_default();
            e.0 += self.now_ms - login;
            e.1 += a.num("bytes-in");
            e.2 += a.num("bytes-out");
        }
        let over: HashSet<String> = live
            .iter()
            .filter(|(name, (up, bi, bo))| {
                let Some(u) = self.users.by("name", name) else {
                    return false;
                };
                let up = i64::try_from(u.num("uptime-ms"))
                    .unwrap_or(i64::MAX)
                    .saturating_add(*up);
                let bytes = u.num("bytes-in") + bi + u.num("bytes-out") + bo;
                u.get("limit-uptime")
                    .and_then(parse_dur)
                    .is_some_and(|l| l > 0 && up >= l)
                    || u.get("limit-bytes-total")
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|l| l > 0 && bytes >= l)
            })
            .map(|(n, _)| n.clone())
            .collect();
        if over.is_empty() {
            return Vec::new();
        }
        let ids: Vec<u32> = self
            .active
            .rows
            .iter()
            .filter(|a| a.get("user").is_some_and(|u| over.contains(u)))
            .map(|a| a.id)
            .collect();
        ids.into_iter().filter_map(|id| self.logout(id)).collect()
    }
}

/// Packets for a byte counter: the simulator moves bytes, not packets; full-size frames are
/// assumed (a real router counts them).
fn packets(bytes: u64) -> u64 {
    bytes.div_ceil(1500)
}

fn parse_dur(v: &str) -> Option<i64> {
    crate::routeros::format::parse_duration(v).ok().flatten()
}

/// Evaluates RouterOS query words against a row: `?k=v`, `?k` (present), `?-k` (absent),
/// `?<k=v`, `?>k=v` (numeric), `?#` operations on the stack (`|`, `&`, `!`, `.`, digits).
/// The result is the AND of what is left on the stack.
fn matches(row: &Row, queries: &[String]) -> Result<bool, String> {
    let mut stack: Vec<bool> = Vec::new();
    for q in queries {
        if let Some(ops) = q.strip_prefix('#') {
            for op in ops.chars() {
                match op {
                    '!' => {
                        let v = stack.pop().ok_or("bad query")?;
                        stack.push(!v);
                    }
                    '&' | '|' => {
                        let b = stack.pop().ok_or("bad query")?;
                        let a = stack.pop().ok_or("bad query")?;
                        stack.push(if op == '&' { a && b } else { a || b });
                    }
                    '.' => {
                        let v = *stack.last().ok_or("bad query")?;
                        stack.push(v);
                    }
                    d if d.is_ascii_digit() => {
                        let i = d.to_digit(10).unwrap_or(0) as usize;
                        let v = *stack.get(i).ok_or("bad query")?;
                        stack.push(v);
                    }
                    _ => return Err(format!("unknown query operation {op}")),
                }
            }
            continue;
        }
        let value_of = |k: &str| -> Option<String> {
            if k == ".id" {
                Some(row.id_str())
            } else {
                row.get(k).map(String::from)
            }
        };
        let v = if let Some(k) = q.strip_prefix('-') {
            value_of(k).is_none()
        } else if let Some(kv) = q.strip_prefix('<').or_else(|| q.strip_prefix('>')) {
            let (k, want) = kv.split_once('=').ok_or("bad query")?;
            let have: f64 = value_of(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
            let want: f64 = want.parse().unwrap_or(f64::NAN);
            if q.starts_with('<') {
                have < want
            } else {
                have > want
            }
        } else if let Some((k, want)) = q.split_once('=') {
            value_of(k).as_deref() == Some(want)
        } else {
            value_of(q).is_some()
        };
        stack.push(v);
    }
    Ok(stack.iter().all(|v| *v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(words: &[&str]) -> Request {
        Request::parse(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    fn add_user(m: &mut Model, name: &str, extra: &[&str]) -> String {
        let mut w = vec![
            "/ip/hotspot/user/add".to_string(),
            format!("=name={name}"),
            "=password=pw".into(),
        ];
        w.extend(extra.iter().map(|s| s.to_string()));
        let r = m.handle(&Request::parse(&w));
        r[0][1].strip_prefix("=ret=").unwrap().to_string()
    }

    #[test]
    fn add_returns_the_id_and_print_honours_proplist_and_queries() {
        let mut m = Model::default();
        let id = add_user(&mut m, "alice", &["=limit-uptime=1h"]);
        add_user(&mut m, "bob", &[]);
        assert_eq!(id, "*1");
        let r = m.handle(&req(&[
            "/ip/hotspot/user/print",
            "?name=alice",
            "=.proplist=.id,name,limit-uptime",
        ]));
        assert_eq!(
            r,
            vec![
                vec![
                    "!re".to_string(),
                    "=.id=*1".into(),
                    "=limit-uptime=1h".into(),
                    "=name=alice".into()
                ],
                vec!["!done".to_string()]
            ]
        );
        let r = m.handle(&req(&[
            "/ip/hotspot/user/print",
            "?name=alice",
            "?name=bob",
            "?#|",
            "=.proplist=name",
        ]));
        assert_eq!(r.len(), 3);
        let r = m.handle(&req(&[
            "/ip/hotspot/user/print",
            "?-limit-uptime",
            "=.proplist=name",
        ]));
        assert_eq!(r[0], vec!["!re".to_string(), "=name=bob".into()]);
        let dup = m.handle(&req(&["/ip/hotspot/user/add", "=name=alice"]));
        assert_eq!(dup[0][0], "!trap");
        let bad = m.handle(&req(&[
            "/ip/hotspot/user/add",
            "=name=carol",
            "=colour=red",
        ]));
        assert_eq!(bad[0][1], "=message=unknown parameter colour");
        let none = m.handle(&req(&["/ip/hotspot/user/remove", "=.id=*99"]));
        assert_eq!(none[0][1], "=message=no such item");
    }

    #[test]
    fn limits_log_users_out_and_cookies_readmit_unless_removed() {
        let mut m = Model::default();
        add_user(&mut m, "alice", &["=limit-bytes-total=1000"]);
        m.portal_login("alice", "pw", "aa:bb:cc:dd:ee:01", "10.5.50.9")
            .unwrap();
        assert_eq!(m.active.rows.len(), 1);
        assert_eq!(m.cookies.rows.len(), 1);
        m.traffic("AA:BB:CC:DD:EE:01", 400, 500);
        assert_eq!(m.active.rows.len(), 1);
        m.traffic("AA:BB:CC:DD:EE:01", 0, 100);
        assert!(
            m.active.rows.is_empty(),
            "limit-bytes-total logs the user out"
        );
        assert_eq!(
            m.device_returns("AA:BB:CC:DD:EE:01", "10.5.50.9"),
            None,
            "over the limit"
        );
        let mut m = Model::default();
        add_user(&mut m, "bob", &[]);
        m.portal_login("bob", "pw", "AA:BB:CC:DD:EE:02", "10.5.50.10")
            .unwrap();
        let id = m.active.rows[0].id;
        m.logout(id);
        assert!(
            m.device_returns("AA:BB:CC:DD:EE:02", "10.5.50.10")
                .is_some(),
            "cookie re-admits"
        );
        let id = m.active.rows[0].id;
        m.logout(id);
        let all: HashSet<u32> = m.cookies.rows.iter().map(|c| c.id).collect();
        m.cookies.remove_ids(&all);
        assert_eq!(m.device_returns("AA:BB:CC:DD:EE:02", "10.5.50.10"), None);
    }

    #[test]
    fn uptime_limit_counts_across_sessions() {
        let mut m = Model::default();
        add_user(&mut m, "alice", &["=limit-uptime=10s"]);
        m.portal_login("alice", "pw", "AA:BB:CC:DD:EE:01", "10.5.50.9")
            .unwrap();
        m.advance(6_000);
        let id = m.active.rows[0].id;
        m.logout(id);
        m.device_returns("AA:BB:CC:DD:EE:01", "10.5.50.9").unwrap();
        m.advance(3_999);
        assert_eq!(m.active.rows.len(), 1);
        m.advance(1);
        assert!(m.active.rows.is_empty());
    }
}
