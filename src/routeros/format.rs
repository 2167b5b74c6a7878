//! Values as RouterOS prints them. Durations come in two forms (`1w2d3h4m5s`, `59m58s`, `0s`,
//! and `1d00:00:00` / `HH:MM:SS`), dates in two (`2026-11-21` since 7.10, `nov/21/2026` before).

/// Parses a RouterOS duration into milliseconds. `none` (unlimited) is `None`.
pub fn parse_duration(text: &str) -> Result<Option<i64>, String> {
    let t = text.trim();
    if t.is_empty() || t == "none" {
        return Ok(None);
    }
    if t.contains(':') {
        // [Nw][Nd]HH:MM:SS[.fff]
        let (prefix, clock) = match t.rfind(['d', 'w']) {
            Some(i) => (&t[..=i], &t[i + 1..]),
            None => ("", t),
        };
        let mut ms = if prefix.is_empty() {
            0
        } else {
            units(prefix).map_err(|e| format!("bad duration {text:?}: {e}"))?
        };
        let parts: Vec<&str> = clock.split(':').collect();
        if parts.len() != 3 {
            return Err(format!("bad duration {text:?}: expected HH:MM:SS"));
        }
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("bad duration {text:?}: {s:?} is not a number"))
        };
        ms += (num(parts[0])? * 3_600_000.0 + num(parts[1])? * 60_000.0 + num(parts[2])? * 1000.0)
            .round() as i64;
        return Ok(Some(ms));
    }
    units(t)
        .map(Some)
        .map_err(|e| format!("bad duration {text:?}: {e}"))
}

fn units(t: &str) -> Result<i64, String> {
    let mut total = 0i64;
    let mut rest = t;
    while !rest.is_empty() {
        let n = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let v: i64 = rest[..n]
            .parse()
            .map_err(|_| "number too large".to_string())?;
        rest = &rest[n..];
        // A bare number is seconds, as RouterOS reads it (`limit-uptime=86400`).
        let (mult, len) = if rest.is_empty() {
            (1000, 0)
        } else if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with("us") {
            (0, 2)
        } else {
            match rest.chars().next() {
                Some('w') => (604_800_000, 1),
                Some('d') => (86_400_000, 1),
                Some('h') => (3_600_000, 1),
                Some('m') => (60_000, 1),
                Some('s') => (1000, 1),
                _ => return Err(format!("unknown unit at {rest:?}")),
            }
        };
        total = v
            .checked_mul(mult)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| "duration too large".to_string())?;
        rest = &rest[len..];
    }
    Ok(total)
}

/// Formats milliseconds as RouterOS does in its newer form (`1d2h3m4s`, `0s`).
pub fn format_duration(ms: i64) -> String {
    crate::units::format_span(crate::units::Span(ms))
}

/// Parses a RouterOS date into (year, month, day).
pub fn parse_date(text: &str) -> Result<(i32, u32, u32), String> {
    let t = text.trim();
    let bad = || format!("bad date {text:?}: expected 2026-11-21 or nov/21/2026");
    if let Some((y, rest)) = t.split_once('-') {
        let (m, d) = rest.split_once('-').ok_or_else(bad)?;
        return Ok((
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            d.parse().map_err(|_| bad())?,
        ));
    }
    let parts: Vec<&str> = t.split('/').collect();
    if parts.len() != 3 {
        return Err(bad());
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let m = MONTHS
        .iter()
        .position(|m| parts[0].eq_ignore_ascii_case(m))
        .ok_or_else(bad)? as u32
        + 1;
    Ok((
        parts[2].parse().map_err(|_| bad())?,
        m,
        parts[1].parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_both_forms() {
        assert_eq!(parse_duration("1w2d3h4m5s").unwrap(), Some(788_645_000));
        assert_eq!(parse_duration("59m58s").unwrap(), Some(3_598_000));
        assert_eq!(parse_duration("0s").unwrap(), Some(0));
        assert_eq!(parse_duration("5s250ms").unwrap(), Some(5_250));
        assert_eq!(parse_duration("1d00:00:00").unwrap(), Some(86_400_000));
        assert_eq!(parse_duration("01:02:03").unwrap(), Some(3_723_000));
        assert_eq!(
            parse_duration("1w1d02:00:00").unwrap(),
            Some(8 * 86_400_000 + 7_200_000)
        );
        assert_eq!(parse_duration("none").unwrap(), None);
        assert_eq!(parse_duration("86400").unwrap(), Some(86_400_000));
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("1:2").is_err());
    }

    #[test]
    fn dates_in_both_forms() {
        assert_eq!(parse_date("2026-11-21").unwrap(), (2026, 11, 21));
        assert_eq!(parse_date("jul/14/2023").unwrap(), (2023, 7, 14));
        assert_eq!(parse_date("Nov/01/2026").unwrap(), (2026, 11, 1));
        assert!(parse_date("14.07.2023").is_err());
    }
}
