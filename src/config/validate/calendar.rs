//! systemd calendar events (`man systemd.time`, "CALENDAR EVENTS"), checked the way
//! `systemd-analyze calendar` checks them, so that a schedule that reaches `OnCalendar=` is one
//! systemd accepts: `*-*-* 99:99:99` is refused here, not by the timer on every host.
//!
//! The grammar, as systemd (252 and later) reads it:
//!
//! ```text
//! event     = shorthand | [weekdays " "+] [date " "+] [time] | "@" seconds   [" UTC"]
//! shorthand = minutely | hourly | daily | weekly | monthly | yearly | annually | quarterly
//!           | semiannually | semi-annually | biannually | bi-annually       (any case)
//! weekdays  = day (("," | ".." | "-") day)* [","]      day: Mon or Monday, ... (any case)
//! date      = [chain "-"] chain ("-" | "~") chain      year-month-day or month-day; "~": from the month's end
//! time      = chain ":" chain [":" chain]              seconds may have a fraction (6 digits)
//! chain     = "*" | part ("," part)*
//! part      = number [".." number] ["/" number]
//! ```
//!
//! and then normalizes each chain (a range shortened to a whole number of repetitions; a range
//! of one value, or a repetition that cannot happen twice, made a single value; years 0-69 and
//! 70-99 read as 20xx and 19xx) before checking ranges: years 1970-2199, months 1-12, days 1-31
//! (1-28 counted from the month's end), hours 0-23, minutes 0-59, seconds below 60; a
//! repetition must fit in its field once more after its start.
//!
//! One deliberate difference: systemd also takes a time zone as the last word (`daily
//! Europe/Berlin`, or the operator's own zone abbreviation), which depends on each host's tzdata
//! and local zone; kinit accepts `UTC` (any case) and refuses every other zone.

/// Why a schedule is not a calendar event systemd accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CalendarError(pub(crate) String);

impl std::fmt::Display for CalendarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const USEC: i64 = 1_000_000;
const INT_MAX: i64 = i32::MAX as i64;
/// `@N` beyond this (2200-01-01T00:00:00Z) is past systemd's last year.
const TIMESTAMP_LIMIT: u64 = 7_258_118_400;

const SHORTHANDS: &[&str] = &[
    "minutely",
    "hourly",
    "daily",
    "monthly",
    "annually",
    "yearly",
    "anually",
    "weekly",
    "quarterly",
    "biannually",
    "bi-annually",
    "semiannually",
    "semi-annually",
];

/// Longer names first: `Monday` is tried before `Mon`.
const WEEKDAYS: &[(&str, u8)] = &[
    ("monday", 0),
    ("mon", 0),
    ("tuesday", 1),
    ("tue", 1),
    ("wednesday", 2),
    ("wed", 2),
    ("thursday", 3),
    ("thu", 3),
    ("friday", 4),
    ("fri", 4),
    ("saturday", 5),
    ("sat", 5),
    ("sunday", 6),
    ("sun", 6),
];

#[derive(Debug, Clone, Copy)]
struct Part {
    start: i64,
    stop: Option<i64>,
    repeat: i64,
}

#[derive(Default)]
struct Event {
    year: Option<Vec<Part>>,
    month: Option<Vec<Part>>,
    day: Option<Vec<Part>>,
    hour: Option<Vec<Part>>,
    minute: Option<Vec<Part>>,
    second: Option<Vec<Part>>,
    end_of_month: bool,
}

fn err<T>(msg: impl Into<String>) -> Result<T, CalendarError> {
    Err(CalendarError(msg.into()))
}

/// Checks `s` as systemd reads an `OnCalendar=` value (see the module's documentation).
pub(crate) fn check(s: &str) -> Result<(), CalendarError> {
    let mut body = s;
    if s.len() >= 4
        && s.is_char_boundary(s.len() - 4)
        && s[s.len() - 4..].eq_ignore_ascii_case(" UTC")
    {
        body = &s[..s.len() - 4];
    } else if let Some((_, zone)) = s.rsplit_once(' ')
        && !zone.is_empty()
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        && zone.bytes().any(|b| b.is_ascii_alphabetic())
        && !SHORTHANDS.iter().any(|h| h.eq_ignore_ascii_case(zone))
        && !WEEKDAYS.iter().any(|(d, _)| d.eq_ignore_ascii_case(zone))
    {
        return err(format!(
            "ends in `{zone}`, which is no part of a calendar event; the only time zone kinit \
             accepts is UTC (\"daily UTC\"), without one the timer follows each host's local time"
        ));
    }
    if body.is_empty() {
        return err("is empty");
    }
    if SHORTHANDS.iter().any(|h| h.eq_ignore_ascii_case(body)) {
        return Ok(());
    }
    let b = body.as_bytes();
    let mut p = 0;
    weekdays(b, &mut p)?;
    let mut ev = Event::default();
    let timestamp = date(b, &mut p, &mut ev)?;
    if !timestamp {
        time(b, &mut p, &mut ev)?;
    }
    if p != b.len() {
        return err(unexpected(b, p));
    }
    normalize(&mut ev);
    valid(&ev)
}

fn unexpected(b: &[u8], p: usize) -> String {
    if p >= b.len() {
        return "ends early: a calendar event is [weekdays] [year-]month-day [hour:minute[:second]], e.g. \"Mon..Fri *-*-* 02:30\"".into();
    }
    if p == 0 {
        return "is not a systemd calendar event: one is a shorthand (hourly, daily, ...) or \
                [weekdays] [year-]month-day [hour:minute[:second]], e.g. \"Mon..Fri *-*-* 02:30\""
            .into();
    }
    let rest = String::from_utf8_lossy(&b[p..]);
    format!(
        "cannot be read from `{rest}` on: a calendar event is [weekdays] [year-]month-day \
         [hour:minute[:second]], e.g. \"Mon..Fri *-*-* 02:30\""
    )
}

fn at(b: &[u8], p: usize) -> u8 {
    b.get(p).copied().unwrap_or(0)
}

fn skip_spaces(b: &[u8], p: &mut usize) {
    while at(b, *p) == b' ' {
        *p += 1;
    }
}

fn weekdays(b: &[u8], p: &mut usize) -> Result<(), CalendarError> {
    let mut range_from: Option<u8> = None;
    let mut first = true;
    loop {
        let rest = &b[*p..];
        let Some((name, nr)) = WEEKDAYS.iter().find(|(name, _)| {
            rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        }) else {
            return if first {
                Ok(())
            } else {
                err(unexpected(b, *p))
            };
        };
        let after = *p + name.len();
        if !matches!(at(b, after), 0 | b'-' | b'.' | b',' | b' ') {
            return err(unexpected(b, *p));
        }
        if let Some(from) = range_from
            && from > *nr
        {
            return err("has a range of weekdays that runs backwards (weeks start on Monday)");
        }
        *p = after;
        match at(b, *p) {
            0 => return Ok(()),
            b' ' => {
                skip_spaces(b, p);
                return Ok(());
            }
            b'.' => {
                if range_from.is_some() || at(b, *p + 1) != b'.' {
                    return err(unexpected(b, *p));
                }
                range_from = Some(*nr);
                *p += 2;
            }
            b'-' => {
                if range_from.is_some() {
                    return err(unexpected(b, *p));
                }
                range_from = Some(*nr);
                *p += 1;
            }
            _ => {
                // ','
                range_from = None;
                *p += 1;
            }
        }
        if matches!(at(b, *p), 0 | b' ') {
            skip_spaces(b, p);
            return if range_from.is_none() {
                Ok(())
            } else {
                err("has a range of weekdays without its end")
            };
        }
        first = false;
    }
}

/// Digits at `p` (at least one) as systemd's strtoul reads them; `None` past `INT_MAX` (or
/// past what `usec` scaling allows).
fn decimal(b: &[u8], p: &mut usize, usec: bool) -> Result<i64, CalendarError> {
    if !at(b, *p).is_ascii_digit() {
        return err(unexpected(b, *p));
    }
    let mut v: i64 = 0;
    while at(b, *p).is_ascii_digit() {
        v = v
            .saturating_mul(10)
            .saturating_add(i64::from(at(b, *p) - b'0'));
        *p += 1;
    }
    if usec {
        v = v.saturating_mul(USEC);
        if at(b, *p) == b'.' && at(b, *p + 1) != b'.' {
            *p += 1;
            if !at(b, *p).is_ascii_digit() {
                return err("has a decimal point without digits after it");
            }
            let mut frac: i64 = 0;
            for _ in 0..6 {
                frac *= 10;
                if at(b, *p).is_ascii_digit() {
                    frac += i64::from(at(b, *p) - b'0');
                    *p += 1;
                }
            }
            if (b'5'..=b'9').contains(&at(b, *p)) {
                frac += 1;
            }
            while at(b, *p).is_ascii_digit() {
                *p += 1;
            }
            v = v.saturating_add(frac);
        }
    }
    if v > INT_MAX {
        return err("has a number too large for any field");
    }
    Ok(v)
}

/// A chain: `None` for `*` (every value; for seconds, every whole second).
fn chain(b: &[u8], p: &mut usize, usec: bool) -> Result<Option<Vec<Part>>, CalendarError> {
    if at(b, *p) == b'*' {
        *p += 1;
        return Ok(if usec {
            Some(vec![Part {
                start: 0,
                stop: None,
                repeat: USEC,
            }])
        } else {
            None
        });
    }
    let mut parts = Vec::new();
    loop {
        let start = decimal(b, p, usec)?;
        let mut stop = None;
        let mut repeat = 0;
        if at(b, *p) == b'.' && at(b, *p + 1) == b'.' {
            *p += 2;
            stop = Some(decimal(b, p, usec)?);
            repeat = if usec { USEC } else { 1 };
        }
        if at(b, *p) == b'/' {
            *p += 1;
            repeat = decimal(b, p, usec)?;
            if repeat == 0 {
                return err("repeats every 0, which never advances");
            }
        }
        if !matches!(at(b, *p), 0 | b' ' | b',' | b'-' | b'~' | b':') {
            return err(unexpected(b, *p));
        }
        parts.push(Part {
            start,
            stop,
            repeat,
        });
        if at(b, *p) != b',' {
            return Ok(Some(parts));
        }
        *p += 1;
    }
}

/// The date, if any; `true` when it was an `@seconds` timestamp (no time follows).
fn date(b: &[u8], p: &mut usize, ev: &mut Event) -> Result<bool, CalendarError> {
    if *p >= b.len() {
        return Ok(false);
    }
    if at(b, *p) == b'@' {
        let mut q = *p + 1;
        let digits = b[q..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return err("has `@` without the seconds since 1970 after it");
        }
        q += digits;
        let n: u64 = std::str::from_utf8(&b[*p + 1..q])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        if n >= TIMESTAMP_LIMIT {
            return err("is a time after 2199, systemd's last year");
        }
        *p = q;
        return Ok(true);
    }
    let mut t = *p;
    let first = chain(b, &mut t, false)?;
    if matches!(at(b, t), 0 | b':') {
        return Ok(false); // a time, not a date
    }
    match at(b, t) {
        b'~' => ev.end_of_month = true,
        b'-' => {}
        _ => return err(unexpected(b, t)),
    }
    t += 1;
    let second = chain(b, &mut t, false)?;
    if matches!(at(b, t), 0 | b' ') {
        skip_spaces(b, &mut t);
        *p = t;
        ev.month = first;
        ev.day = second;
        return Ok(false);
    }
    if ev.end_of_month {
        return err(unexpected(b, t));
    }
    match at(b, t) {
        b'~' => ev.end_of_month = true,
        b'-' => {}
        _ => return err(unexpected(b, t)),
    }
    t += 1;
    let third = chain(b, &mut t, false)?;
    if !matches!(at(b, t), 0 | b' ') {
        return err(unexpected(b, t));
    }
    skip_spaces(b, &mut t);
    *p = t;
    ev.year = first;
    ev.month = second;
    ev.day = third;
    Ok(false)
}

fn time(b: &[u8], p: &mut usize, ev: &mut Event) -> Result<(), CalendarError> {
    let zero = |v| {
        Some(vec![Part {
            start: v,
            stop: None,
            repeat: 0,
        }])
    };
    if *p >= b.len() {
        ev.hour = zero(0);
        ev.minute = zero(0);
        ev.second = zero(0);
        return Ok(());
    }
    ev.hour = chain(b, p, false)?;
    if at(b, *p) != b':' {
        return err(unexpected(b, *p));
    }
    *p += 1;
    ev.minute = chain(b, p, false)?;
    if *p >= b.len() {
        ev.second = zero(0);
        return Ok(());
    }
    if at(b, *p) != b':' {
        return err(unexpected(b, *p));
    }
    *p += 1;
    ev.second = chain(b, p, true)?;
    Ok(())
}

/// Years 0-69 are 2000-2069, 70-99 are 1970-1999.
fn full_year(v: i64) -> i64 {
    match v {
        0..=69 => v + 2000,
        70..=99 => v + 1900,
        _ => v,
    }
}

fn normalize(ev: &mut Event) {
    if ev.day.is_none() {
        ev.end_of_month = false;
    }
    if let Some(years) = &mut ev.year {
        for part in years.iter_mut() {
            part.start = full_year(part.start);
            part.stop = part.stop.map(full_year);
        }
    }
    for parts in [
        &mut ev.year,
        &mut ev.month,
        &mut ev.day,
        &mut ev.hour,
        &mut ev.minute,
        &mut ev.second,
    ]
    .into_iter()
    .flatten()
    {
        for part in parts.iter_mut() {
            if let Some(stop) = part.stop
                && stop > part.start
                && part.repeat > 0
            {
                let stop = stop - (stop - part.start) % part.repeat;
                part.stop = Some(stop);
            }
            if let Some(stop) = part.stop
                && (stop == part.start
                    || (stop > part.start && part.repeat > 0 && part.start + part.repeat > stop))
            {
                part.stop = None;
                part.repeat = 0;
            }
        }
    }
}

fn valid(ev: &Event) -> Result<(), CalendarError> {
    type Field<'a> = (&'a str, &'a Option<Vec<Part>>, i64, i64, bool);
    let fields: [Field; 6] = [
        ("year", &ev.year, 1970, 2199, false),
        ("month", &ev.month, 1, 12, false),
        ("day", &ev.day, 1, 31, ev.end_of_month),
        ("hour", &ev.hour, 0, 23, false),
        ("minute", &ev.minute, 0, 59, false),
        ("second", &ev.second, 0, 60 * USEC - 1, false),
    ];
    for (name, parts, from, to, end_of_month) in fields {
        let Some(parts) = parts else { continue };
        let to = if end_of_month { to - 3 } else { to };
        let scale = if name == "second" { USEC } else { 1 };
        let shown = |v: i64| {
            if v % scale == 0 {
                format!("{}", v / scale)
            } else {
                format!("{}.{:06}", v / scale, v % scale)
            }
        };
        let range = if end_of_month {
            "1-28 counted from the month's end".to_string()
        } else if name == "second" {
            "0-59".to_string()
        } else {
            format!("{from}-{}", to)
        };
        for part in parts {
            for v in std::iter::once(part.start).chain(part.stop) {
                if v < from || v > to {
                    return err(format!("has {name} {}, outside {range}", shown(v)));
                }
            }
            let fits = part.repeat <= to - from
                && match part.stop {
                    Some(stop) => part.start + part.repeat <= stop,
                    None if end_of_month => part.start - part.repeat >= from,
                    None => part.start + part.repeat <= to,
                };
            if !fits {
                let what = match part.stop {
                    Some(stop) if stop < part.start => format!(
                        "has the {name} range {}..{}, which runs backwards",
                        shown(part.start),
                        shown(stop)
                    ),
                    _ => format!(
                        "repeats its {name} every {} from {}, which never comes round within {range}",
                        shown(part.repeat),
                        shown(part.start)
                    ),
                };
                return err(what);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
