//! Output for people (text tables, `key: value` lines, the status page) or scripts (`--json`).
//! The store hands over rows and JSON; how they look is decided here.

use std::io::Write;

use serde_json::{json, Value};

use super::dispatch::{CliError, Ctx};
use crate::store::views::Table;
use crate::units::{format_bytes, format_span, Span};

impl<W: Write> Ctx<'_, W> {
    pub(super) fn print_json(&mut self, v: &Value) -> Result<(), CliError> {
        writeln!(
            self.out,
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_default()
        )?;
        Ok(())
    }

    pub(super) fn print_table(&mut self, t: crate::store::views::Table) -> Result<(), CliError> {
        if self.json {
            self.print_json(&t.to_json())
        } else {
            write!(self.out, "{}", table_text(&t))?;
            Ok(())
        }
    }

    /// JSON as is, or a few `key: value` lines for people.
    pub(super) fn print_result(&mut self, v: &Value, headline: &str) -> Result<(), CliError> {
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
}

/// A table as aligned text columns under upper-case headers; `(none)` when empty.
pub(super) fn table_text(t: &Table) -> String {
    let cell = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let cells: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(cell).collect())
        .collect();
    let mut widths: Vec<usize> = t.columns.iter().map(|c| c.len()).collect();
    for r in &cells {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |vals: Vec<&str>| {
        let mut s = String::new();
        for (i, v) in vals.iter().enumerate() {
            if i + 1 == vals.len() {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let headers: Vec<String> = t.columns.iter().map(|c| c.to_uppercase()).collect();
    let mut out = line(headers.iter().map(String::as_str).collect());
    for r in &cells {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    if t.rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

pub(super) fn render_status(v: &Value) -> String {
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
            "trusted".to_string()
        } else if g("/clock/high-water")
            .as_str()
            .is_some_and(|hwm| hwm > txt(g("/clock/now")).as_str())
        {
            // RFC 3339 UTC strings of one format compare as times.
            format!(
                "NOT trusted: behind the high-water mark {}; waiting for NTP, or, if the clock is right now, `hotspot-edge clock reset-high-water` (docs/time.md)",
                txt(g("/clock/high-water"))
            )
        } else {
            "NOT trusted: waiting for NTP".to_string()
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
