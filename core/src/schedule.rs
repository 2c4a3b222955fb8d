//! Reminder and timer schedules: parses the `dueTime`, `period` and `ttl` strings of
//! Dapr's actors API into absolute instants, and says when a schedule fires next.
//!
//! Reminders are durable: they outlive the host that registered them and may fire on
//! another one after a restart. So every instant here is wall-clock time in Unix-epoch
//! milliseconds (UTC), never a monotonic `Instant`, and the caller passes "now" in so
//! that parsing is deterministic.
//!
//! # Accepted forms
//!
//! | form | example | `dueTime` | `period` | `ttl` |
//! |---|---|---|---|---|
//! | ISO-8601 duration | `PT5S`, `P1DT2H`, `PT0.5S`, `P2W` | yes | yes | yes |
//! | ... with repetitions | `R5/PT1S`, `R/PT1S` | no | yes | no |
//! | Go duration (`time.ParseDuration`) | `1h2m3.5s`, `10ms`, `1us`, `1µs`, `300ns`, `0` | yes | yes | yes |
//! | RFC3339 time | `2026-11-25T17:00:00Z`, `2026-11-25T19:00:00.5+02:00` | yes | no | yes |
//!
//! An empty `dueTime` means "now"; an empty `period` means one-shot; an empty `ttl`
//! means no expiry.
//!
//! # Semantics, and where they come from
//!
//! Dapr's behaviour was read in `dapr/kit` `time/time.go` (`ParseISO8601Duration`,
//! `ParseDuration`, `ParseTime`), `dapr/dapr` `pkg/actors/api/{reminders,period,
//! reminder}.go` (`setReminderTimes`, `NewReminderPeriod`, `TickExecuted`) and
//! `pkg/actors/internal/scheduler/scheduler.go` (`scheduleFromPeriod`), and in the
//! Scheduler's job library, `diagridio/go-etcd-cron` `internal/scheduler/{builder,
//! repeats}.go`; and in the docs page "Actors timers and reminders".
//!
//! * A relative `ttl` counts from the due time, not from registration: Dapr parses it
//!   with the due time as its base in both the actor runtime and the Scheduler. An
//!   expiry before the due time, or already in the past, is rejected, as Dapr does; one
//!   equal to the due time is accepted.
//! * Expiry is inclusive: a tick falling exactly on the expiry still fires, as in the
//!   Scheduler (`next.After(exp)` ends the job). The legacy actor runtime dropped it.
//! * `Rn` counts all invocations, the first included ("`R10/PT3S` fires 10 times").
//!   `R0` is rejected ("has zero repetitions").
//! * Years and months in a `dueTime`/`ttl` are calendar arithmetic, as Go's `AddDate`:
//!   the month is shifted and an overflowing day rolls over, so Jan 31 + `P1M` is
//!   Mar 3 (Mar 2 in a leap year). Dapr does this in the host's local zone; Rookery in
//!   UTC, the only zone every host agrees on. Weeks are 7 days, days 24 hours.
//! * A `period` with years or months is rejected, as the Scheduler-backed reminders of
//!   current Dapr do (`unsupported period format`): their length varies, and a period is
//!   kept as fixed milliseconds. Days and weeks are accepted as 24 h and 7 × 24 h (the
//!   legacy runtime accepted them; in UTC that is exact).
//! * Go durations are Go's grammar exactly: a leading `+`, a bare `0`, fractions on any
//!   unit (`1.5h`, `.5s`), units `ns us µs μs ms s m h`, at most 2^63-1 ns (~292 years).
//!   Digits below a nanosecond are dropped, as Go does.
//! * Rounding: a sub-millisecond value is rounded up to the next millisecond (`1us` and
//!   `300ns` are 1 ms, `PT0.0001S` too), so a due time is never earlier than asked and a
//!   non-zero period never becomes zero.
//! * RFC3339 follows Go's strict RFC3339 parser: `T` and `Z` upper case, offset
//!   `±hh:mm`, no leap second, fraction of any length (digits past the ninth ignored).
//!   A time in the past is a valid `dueTime` (it fires at once), as in Dapr.
//!
//! Deliberate differences from Dapr, where its parser is lax by accident or does
//! something harmful:
//!
//! * Stricter: Dapr's ISO parser ignores unknown characters and trailing numbers
//!   (`PT5X`, `PT5` parse as zero), accepts signs (`PT-5S`), repeated or out-of-order
//!   designators (`P1D1D`), an empty `PT`, and `R5`/`R5/` without a duration. All of
//!   these are errors here. A `-` Go duration (a due time in the past) is refused.
//! * A zero period is an error. Dapr's legacy runtime treated it as one-shot and the
//!   Scheduler as "every 0 s", firing in a tight loop.
//! * More lenient: fractional seconds in ISO durations (`PT0.5S`; Dapr only parses whole
//!   numbers there) and `R/` for unbounded repetitions (ISO 8601's own form; Dapr wants a
//!   number). Both only accept what Dapr would refuse, so Dapr clients are unaffected.
//! * A `ttl` on a one-shot reminder is accepted, as the legacy runtime and the docs do;
//!   the Scheduler refuses it ("job must have a schedule to have a ttl").

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The latest instant a schedule may name, 9999-12-31T23:59:59.999Z: the end of the range
/// an RFC3339 four-digit year can write, and far beyond anything meant in earnest.
pub const MAX_INSTANT_MS: u64 = 253_402_300_799_999;

const MS_PER_DAY: u64 = 86_400_000;
const NS_PER_MS: u128 = 1_000_000;
const NS_PER_SECOND: u64 = 1_000_000_000;

// Field names as a Dapr client spells them in its request, so that errors point at it.
const DUE_FIELD: &str = "dueTime";
const PERIOD_FIELD: &str = "period";
const TTL_FIELD: &str = "ttl";

const UNRECOGNISED: &str = "expected an ISO-8601 duration (PT1M30S), \
    a Go duration (1m30s) or an RFC3339 time (2026-01-02T15:04:05Z)";

/// When a reminder or timer fires: first at `due_at_ms`, then every period, until its
/// repetitions are used up or `expires_at_ms` has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The first firing, Unix-epoch ms. May be in the past: it then fires at once.
    pub due_at_ms: u64,
    /// `None`: fires once.
    pub period: Option<Period>,
    /// The last instant at which a tick may still fire (inclusive), Unix-epoch ms.
    pub expires_at_ms: Option<u64>,
}

/// The repetition of a periodic reminder or timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Interval between two firings, in ms; never zero.
    pub every_ms: u64,
    /// Total number of firings, the first included (`R5/…` fires 5 times); `None`: no
    /// limit.
    pub repetitions: Option<u32>,
}

/// A schedule string that cannot be accepted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ScheduleError {
    /// `field` is the API's name for it: `dueTime`, `period` or `ttl`.
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
}

impl Schedule {
    /// The due instant of the firing after the one due at `fired_at_due_ms`, which was
    /// firing number `fired_count` (1 for the first); `None` once the schedule is done:
    /// one-shot, repetitions used up, or the next tick past the expiry.
    ///
    /// Counting from the due instant rather than from when the tick actually ran keeps a
    /// late tick from pushing back every later one. Missed ticks are not skipped here: a
    /// host that was down gets past instants back and may fire them at once or skip them.
    /// An instant beyond `u64` ends the schedule rather than wrapping around.
    pub fn next_after(&self, fired_at_due_ms: u64, fired_count: u32) -> Option<u64> {
        let period = self.period?;
        if period.repetitions.is_some_and(|total| fired_count >= total) {
            return None;
        }
        let next = fired_at_due_ms.checked_add(period.every_ms)?;
        if self.expires_at_ms.is_some_and(|expires| next > expires) {
            return None;
        }
        Some(next)
    }
}

/// The absolute instant of a `dueTime`: `now_ms` plus a duration, or an RFC3339 time.
/// Empty means now, as Dapr fires at once when no due time is given.
pub fn parse_due(value: &str, now_ms: u64) -> Result<u64, ScheduleError> {
    if value.is_empty() {
        return Ok(now_ms);
    }
    parse_point(value, now_ms).map_err(|reason| invalid(DUE_FIELD, value, reason))
}

/// A `period`: an ISO-8601 duration with optional repetitions, or a Go duration.
/// Empty means none: the reminder fires once.
pub fn parse_period(value: &str) -> Result<Option<Period>, ScheduleError> {
    if value.is_empty() {
        return Ok(None);
    }
    period_of(value)
        .map(Some)
        .map_err(|reason| invalid(PERIOD_FIELD, value, reason))
}

/// The expiry of a `ttl`: an RFC3339 time, or a duration counted from the due time (as
/// Dapr counts it). It must be neither before the due time nor already past. Empty means
/// no expiry.
pub fn parse_ttl(value: &str, now_ms: u64, due_at_ms: u64) -> Result<Option<u64>, ScheduleError> {
    if value.is_empty() {
        return Ok(None);
    }
    let expires =
        parse_point(value, due_at_ms).map_err(|reason| invalid(TTL_FIELD, value, reason))?;
    let reason = if expires < due_at_ms {
        format!(
            "expires at {}, before the due time {}",
            fmt_instant(expires),
            fmt_instant(due_at_ms)
        )
    } else if expires < now_ms {
        format!("already expired at {}", fmt_instant(expires))
    } else {
        return Ok(Some(expires));
    };
    Err(invalid(TTL_FIELD, value, reason))
}

/// Parses the three strings of a reminder or timer registration made at `now_ms`.
/// Errors name the first invalid field, checked in the order Dapr checks them.
pub fn parse_schedule(
    due: &str,
    period: &str,
    ttl: &str,
    now_ms: u64,
) -> Result<Schedule, ScheduleError> {
    let due_at_ms = parse_due(due, now_ms)?;
    let period = parse_period(period)?;
    let expires_at_ms = parse_ttl(ttl, now_ms, due_at_ms)?;
    Ok(Schedule {
        due_at_ms,
        period,
        expires_at_ms,
    })
}

/// A Go duration (`time.ParseDuration`: `1h`, `30s`, `0h10m0s0ms0μs`) in milliseconds,
/// rounded up: the form Dapr apps give their actor settings in (`actorIdleTimeout`,
/// `drainOngoingCallTimeout`). Errors name the value.
pub fn parse_go_duration_ms(value: &str) -> Result<u64, String> {
    let ns = parse_go_duration(value).map_err(|reason| format!("{value:?}: {reason}"))?;
    u64::try_from(u128::from(ns).div_ceil(NS_PER_MS)).map_err(|_| too_large())
}

/// A duration as Go prints one (`1h2m3.5s`, `1m0s`, `250ms`, `0s`), which is readable
/// and which every Dapr client and this module parse back to the same value.
pub fn format_duration_ms(ms: u64) -> String {
    if ms < 1_000 {
        return if ms == 0 {
            "0s".to_owned()
        } else {
            format!("{ms}ms")
        };
    }
    let seconds = ms / 1_000;
    let (hours, minutes) = (seconds / 3_600, seconds / 60 % 60);
    let mut out = String::new();
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{}", seconds % 60);
    let millis = ms % 1_000;
    if millis > 0 {
        let fraction = format!("{millis:03}");
        let _ = write!(out, ".{}", fraction.trim_end_matches('0'));
    }
    out.push('s');
    out
}

fn invalid(field: &'static str, value: &str, reason: String) -> ScheduleError {
    ScheduleError::Invalid {
        field,
        value: value.to_owned(),
        reason,
    }
}

/// How a value was written: a span to add to some base, or a point in time.
enum Parsed {
    Span(Span),
    At(u64),
}

/// A relative duration. Months (a year is 12) are kept apart from days and days apart
/// from the rest, because their length depends on the date they are added to.
#[derive(Default)]
struct Span {
    months: u64,
    days: u64,
    ms: u64,
    repetitions: Repetitions,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Repetitions {
    #[default]
    Absent,
    Unlimited,
    Count(u32),
}

/// Tells the three forms apart by their first characters (they cannot be confused:
/// ISO durations start with `P` or `R`, RFC3339 times with `dddd-`, Go durations with a
/// digit, `.` or a sign), so each error can speak of the form that was meant.
fn parse_value(value: &str) -> Result<Parsed, String> {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'P' | b'R') => parse_iso8601(value).map(Parsed::Span),
        _ if bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' => {
            parse_rfc3339(value).map(Parsed::At)
        }
        Some(b'0'..=b'9' | b'.' | b'+' | b'-') => {
            let ns = parse_go_duration(value)?;
            let ms = u64::try_from(u128::from(ns).div_ceil(NS_PER_MS)).map_err(|_| too_large())?;
            Ok(Parsed::Span(Span {
                ms,
                ..Span::default()
            }))
        }
        _ => Err(UNRECOGNISED.to_owned()),
    }
}

/// A due time or ttl: a point in time, or a span without repetitions after `base_ms`.
fn parse_point(value: &str, base_ms: u64) -> Result<u64, String> {
    match parse_value(value)? {
        Parsed::At(at) => Ok(at),
        Parsed::Span(span) if span.repetitions != Repetitions::Absent => {
            Err("repetitions (R…/) are only allowed in a period".to_owned())
        }
        Parsed::Span(span) => add_span(base_ms, &span),
    }
}

fn period_of(value: &str) -> Result<Period, String> {
    let span = match parse_value(value)? {
        Parsed::Span(span) => span,
        Parsed::At(_) => return Err("a period must be a duration, not a point in time".to_owned()),
    };
    if span.months != 0 {
        return Err("years and months have no fixed length; \
            use days or hours (P30D, PT720H) instead"
            .to_owned());
    }
    let every_ms = span
        .days
        .checked_mul(MS_PER_DAY)
        .and_then(|ms| ms.checked_add(span.ms))
        .ok_or_else(too_large)?;
    if every_ms == 0 {
        return Err("a period must be longer than zero".to_owned());
    }
    let repetitions = match span.repetitions {
        Repetitions::Count(count) => Some(count),
        Repetitions::Absent | Repetitions::Unlimited => None,
    };
    Ok(Period {
        every_ms,
        repetitions,
    })
}

/// `base_ms` plus `span`, with months added as Go's `AddDate` adds them (in UTC).
fn add_span(base_ms: u64, span: &Span) -> Result<u64, String> {
    // Beyond these the result is past year 9999 whatever the base; bounding them first
    // keeps the arithmetic below within i64.
    if span.months > 12 * 10_000 || span.days > 366 * 10_000 || span.ms > MAX_INSTANT_MS {
        return Err(beyond_max());
    }
    let to_i64 = |n: u64| i64::try_from(n).map_err(|_| beyond_max());
    let base = to_i64(base_ms)?;
    let ms_per_day = to_i64(MS_PER_DAY)?;
    let (year, month, day) = civil_from_days(base.div_euclid(ms_per_day));
    // Shift the month, then let an overflowing day roll into the next month: Jan 31 plus
    // one month is "Feb 31", that is Mar 3 (Mar 2 in a leap year), as in Go.
    let months = year * 12 + (month - 1) + to_i64(span.months)?;
    let days = days_from_civil(months.div_euclid(12), months.rem_euclid(12) + 1, 1)
        + (day - 1)
        + to_i64(span.days)?;
    let at = days * ms_per_day + base.rem_euclid(ms_per_day) + to_i64(span.ms)?;
    u64::try_from(at)
        .ok()
        .filter(|&at| at <= MAX_INSTANT_MS)
        .ok_or_else(beyond_max)
}

/// An ISO-8601 duration, `[R[n]/]P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]`.
fn parse_iso8601(value: &str) -> Result<Span, String> {
    let mut span = Span::default();
    let mut rest = value;
    if let Some(after_r) = rest.strip_prefix('R') {
        let (count, duration) = after_r
            .split_once('/')
            .ok_or("expected '/' after the repetition count, as in R5/PT1S")?;
        span.repetitions = parse_repetitions(count)?;
        rest = duration;
    }
    let body = rest
        .strip_prefix('P')
        .ok_or("an ISO-8601 duration starts with 'P', as in PT1M30S")?;
    let (date, time) = match body.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (body, None),
    };
    if date.is_empty() && time.is_none() {
        return Err("a duration needs at least one component, as in PT1S".to_owned());
    }
    if time == Some("") {
        return Err("'T' must be followed by hours, minutes or seconds".to_owned());
    }

    for (designator, number) in components(date, &['Y', 'M', 'W', 'D'], &['H', 'S'], "after")? {
        let n = whole_number(designator, number)?;
        let (field, factor) = match designator {
            'Y' => (&mut span.months, 12),
            'M' => (&mut span.months, 1),
            'W' => (&mut span.days, 7),
            _ => (&mut span.days, 1),
        };
        *field = n
            .checked_mul(factor)
            .and_then(|n| field.checked_add(n))
            .ok_or_else(too_large)?;
    }

    let mut ns: u128 = 0;
    let time_components = match time {
        Some(time) => components(time, &['H', 'M', 'S'], &['Y', 'W', 'D'], "before")?,
        None => Vec::new(),
    };
    for (designator, number) in time_components {
        ns += match designator {
            'H' => {
                u128::from(whole_number(designator, number)?) * 3_600 * u128::from(NS_PER_SECOND)
            }
            'M' => u128::from(whole_number(designator, number)?) * 60 * u128::from(NS_PER_SECOND),
            _ => scaled(number, NS_PER_SECOND)?,
        };
    }
    span.ms = u64::try_from(ns.div_ceil(NS_PER_MS)).map_err(|_| too_large())?;
    Ok(span)
}

/// The `n` of `Rn/`.
fn parse_repetitions(count: &str) -> Result<Repetitions, String> {
    // ISO 8601 writes unbounded repetition as a bare `R/`.
    if count.is_empty() {
        return Ok(Repetitions::Unlimited);
    }
    if !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the repetition count {count:?} must be a whole number"
        ));
    }
    let at_most = || format!("repetitions must be at most {}", u32::MAX);
    match digits_value(count).ok_or_else(at_most)? {
        0 => Err("repetitions must be at least 1".to_owned()),
        n => u32::try_from(n)
            .map(Repetitions::Count)
            .map_err(|_| at_most()),
    }
}

/// Splits one part of an ISO-8601 duration (`1Y2M` or `3H4.5S`) into (designator,
/// number) pairs, each designator at most once and in ISO's order. `elsewhere` are the
/// designators of the other part, which belong `where_` the `T`.
fn components<'a>(
    part: &'a str,
    order: &[char],
    elsewhere: &[char],
    where_: &str,
) -> Result<Vec<(char, &'a str)>, String> {
    let mut found = Vec::new();
    let mut rest = part;
    // Index in `order` of the earliest designator still allowed.
    let mut next = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_end);
        let mut chars = tail.chars();
        let Some(designator) = chars.next() else {
            return Err(format!("the number {number:?} has no unit designator"));
        };
        rest = chars.as_str();
        let Some(position) = order.iter().position(|&d| d == designator) else {
            return Err(if designator == '-' || designator == '+' {
                "signs are not allowed".to_owned()
            } else if elsewhere.contains(&designator) {
                format!("'{designator}' belongs {where_} the 'T'")
            } else {
                format!("unknown designator {designator:?}")
            });
        };
        if position < next {
            let order: String = order.iter().collect();
            return Err(format!(
                "'{designator}' is repeated or out of order (the order is {order})"
            ));
        }
        next = position + 1;
        if number.is_empty() {
            return Err(format!("missing number before '{designator}'"));
        }
        found.push((designator, number));
    }
    Ok(found)
}

/// The number of an ISO-8601 component other than seconds, which ISO allows a fraction
/// only on the last component of; here, only seconds.
fn whole_number(designator: char, number: &str) -> Result<u64, String> {
    if number.contains('.') {
        return Err(format!(
            "only seconds may have a fraction, not '{designator}'"
        ));
    }
    digits_value(number).ok_or_else(too_large)
}

/// Go's `time.ParseDuration`, the form Dapr falls back to: `[+]` then one or more
/// `<decimal><unit>` (`1h2m3.5s`), or a bare `0`. Returns nanoseconds.
fn parse_go_duration(value: &str) -> Result<u64, String> {
    // A Go duration is an int64 of nanoseconds; larger values are refused by Go too.
    const MAX_NS: u128 = i64::MAX as u128;
    let rest = value.strip_prefix('+').unwrap_or(value);
    if rest.starts_with('-') {
        return Err("negative durations are not allowed".to_owned());
    }
    // Go's special case: zero needs no unit.
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(UNRECOGNISED.to_owned());
    }
    let mut rest = rest;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        rest = tail;
        if number.is_empty() {
            return Err(format!("expected a number before {unit:?}"));
        }
        let unit_ns = match unit {
            "ns" => 1,
            // Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => NS_PER_SECOND,
            "m" => 60 * NS_PER_SECOND,
            "h" => 3_600 * NS_PER_SECOND,
            "" => {
                return Err(format!(
                    "missing unit after {number:?} (h, m, s, ms, us or ns)"
                ))
            }
            _ => return Err(format!("unknown unit {unit:?} (h, m, s, ms, us or ns)")),
        };
        total += scaled(number, unit_ns)?;
        if total > MAX_NS {
            return Err("too large: a Go duration is at most 2562047h47m16.854775807s".to_owned());
        }
    }
    u64::try_from(total).map_err(|_| too_large())
}

/// `number × unit` for a decimal `number` (`3`, `3.5`, `.5`, `3.`), rounded down to a
/// whole unit of the result (so digits below a nanosecond are dropped, as Go does).
fn scaled(number: &str, unit: u64) -> Result<u128, String> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return Err(format!("malformed number {number:?}"));
    }
    let whole = digits_value(whole).ok_or_else(too_large)?;
    // 18 digits are plenty: the largest unit, an hour, is 3.6e12 ns, so later digits are
    // worth less than 1e-5 ns; and 10^18 × 3.6e12 fits a u128 easily.
    let fraction = fraction.get(..fraction.len().min(18)).unwrap_or_default();
    let numerator = fraction
        .bytes()
        .fold(0u128, |n, b| n * 10 + u128::from(b - b'0'));
    let denominator = 10u128.pow(u32::try_from(fraction.len()).unwrap_or(18));
    Ok(u128::from(whole) * u128::from(unit) + numerator * u128::from(unit) / denominator)
}

/// The value of a string of ASCII digits (empty is 0); `None` if it overflows a u64.
fn digits_value(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |n, b| {
        n.checked_mul(10)?
            .checked_add(u64::from(b.checked_sub(b'0')?))
    })
}

/// An RFC3339 time, `YYYY-MM-DDThh:mm:ss[.f](Z|±hh:mm)`, as Go's strict parser reads it.
fn parse_rfc3339(value: &str) -> Result<u64, String> {
    const SHAPE: &str =
        "an RFC3339 time looks like 2026-01-02T15:04:05Z or 2026-01-02T15:04:05.5+02:00";
    let bytes = value.as_bytes();
    // Two-digit (or four-digit) field at `at`, checked against its range.
    let field = |at: usize, len: usize, min: i64, max: i64, name: &str| -> Result<i64, String> {
        let digits = value
            .get(at..at + len)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
        let n = digits.and_then(digits_value).ok_or(SHAPE)?;
        let n = i64::try_from(n).map_err(|_| SHAPE)?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{name} {n} is out of range {min}..={max}"))
        }
    };
    let separator = |at: usize, expected: u8| bytes.get(at) == Some(&expected);
    if !(separator(4, b'-') && separator(7, b'-') && separator(13, b':') && separator(16, b':')) {
        return Err(SHAPE.to_owned());
    }
    if !separator(10, b'T') {
        return Err("expected 'T' between date and time, as in 2026-01-02T15:04:05Z".to_owned());
    }
    let year = field(0, 4, 0, 9_999, "year")?;
    let month = field(5, 2, 1, 12, "month")?;
    let day = field(8, 2, 1, days_in_month(year, month), "day")?;
    let hour = field(11, 2, 0, 23, "hour")?;
    let minute = field(14, 2, 0, 59, "minute")?;
    let second = field(17, 2, 0, 59, "second")?;

    let mut rest = value.get(19..).unwrap_or_default();
    let mut fraction_ns: u128 = 0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let end = after_dot
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_dot.len());
        let (digits, tail) = after_dot.split_at(end);
        if digits.is_empty() {
            return Err("expected digits after '.'".to_owned());
        }
        // Go reads nine digits, a nanosecond, and ignores the rest.
        let nine = digits.get(..9).unwrap_or(digits);
        fraction_ns = scaled(&format!(".{nine}"), NS_PER_SECOND)?;
        rest = tail;
    }
    let offset_minutes = match rest.as_bytes() {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let offset = value.len() - 6;
            let minutes = field(offset + 1, 2, 0, 23, "offset hour")? * 60
                + field(offset + 4, 2, 0, 59, "offset minute")?;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => {
            return Err(
                "expected the time zone at the end: Z or an offset such as +02:00".to_owned(),
            )
        }
    };

    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_minutes * 60;
    if seconds < 0 {
        return Err("before the Unix epoch (1970-01-01T00:00:00Z)".to_owned());
    }
    let ms = u128::from(seconds.unsigned_abs()) * 1_000 + fraction_ns.div_ceil(NS_PER_MS);
    u64::try_from(ms)
        .ok()
        .filter(|&ms| ms <= MAX_INSTANT_MS)
        .ok_or_else(beyond_max)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// An instant in RFC3339, for error messages.
/// An instant (Unix-epoch ms) as RFC3339 in UTC, `2026-12-03T09:30:00Z` or with `.500`
/// milliseconds when it has any: the form this module parses back.
pub fn format_rfc3339_ms(ms: u64) -> String {
    fmt_instant(ms)
}

fn fmt_instant(ms: u64) -> String {
    let Ok(signed) = i64::try_from(ms) else {
        return format!("{ms} ms after the epoch");
    };
    let ms_per_day = 86_400_000_i64;
    let (year, month, day) = civil_from_days(signed.div_euclid(ms_per_day));
    let of_day = signed.rem_euclid(ms_per_day);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1_000 % 60
    );
    if of_day % 1_000 != 0 {
        let _ = write!(out, ".{:03}", of_day % 1_000);
    }
    out.push('Z');
    out
}

fn too_large() -> String {
    "too large".to_owned()
}

fn beyond_max() -> String {
    format!(
        "lies beyond {}, the latest supported instant",
        fmt_instant(MAX_INSTANT_MS)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-31T12:00:00Z: the last day of a month, to show how months are added.
    const NOW: u64 = 1_769_860_800_000;
    /// The due time the `ttl` rows of the table count from.
    const DUE_AT: u64 = NOW + 10 * SECOND;
    const SECOND: u64 = 1_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    /// 2026-11-25T17:00:00Z.
    const NOV_25: u64 = 1_795_626_000_000;

    #[derive(Clone, Copy, Debug)]
    enum Field {
        Due,
        Period,
        Ttl,
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        At(u64),
        Every(u64, Option<u32>),
        Nothing,
        /// An error whose reason contains this.
        Fails(&'static str),
    }

    fn run(field: Field, value: &str) -> Result<Want, ScheduleError> {
        match field {
            Field::Due => parse_due(value, NOW).map(Want::At),
            Field::Period => parse_period(value)
                .map(|p| p.map_or(Want::Nothing, |p| Want::Every(p.every_ms, p.repetitions))),
            Field::Ttl => parse_ttl(value, NOW, DUE_AT).map(|t| t.map_or(Want::Nothing, Want::At)),
        }
    }

    #[test]
    fn table_of_accepted_and_rejected_values() {
        use Field::{Due, Period as Per, Ttl};
        use Want::{At, Every, Fails, Nothing};
        let cases: &[(Field, &str, Want)] = &[
            // dueTime, ISO-8601.
            (Due, "", At(NOW)),
            (Due, "PT5S", At(NOW + 5 * SECOND)),
            (Due, "P1DT2H", At(NOW + DAY + 2 * HOUR)),
            (Due, "PT1M30S", At(NOW + 90 * SECOND)),
            (Due, "PT0.5S", At(NOW + 500)),
            (Due, "PT0.0001S", At(NOW + 1)),
            (Due, "P2W", At(NOW + 14 * DAY)),
            (Due, "P1W2D", At(NOW + 9 * DAY)),
            (Due, "PT0S", At(NOW)),
            // Jan 31 + 1 month = "Feb 31" = 2026-03-03T12:00:00Z, as Go's AddDate.
            (Due, "P1M", At(1_772_539_200_000)),
            (Due, "P1Y", At(1_801_396_800_000)),
            (
                Due,
                "PT",
                Fails("'T' must be followed by hours, minutes or seconds"),
            ),
            (Due, "P", Fails("at least one component")),
            (Due, "PT1D", Fails("'D' belongs before the 'T'")),
            (Due, "P1H", Fails("'H' belongs after the 'T'")),
            (Due, "PT5X", Fails("unknown designator 'X'")),
            (Due, "PT5", Fails("has no unit designator")),
            (Due, "PT1S5M", Fails("out of order")),
            (Due, "P1D1D", Fails("repeated or out of order")),
            (Due, "PT-5S", Fails("signs are not allowed")),
            (Due, "PT1.5M", Fails("only seconds may have a fraction")),
            (Due, "PT1.2.3S", Fails("malformed number")),
            (Due, "PTS", Fails("missing number before 'S'")),
            (Due, "pt5s", Fails("expected an ISO-8601 duration")),
            (Due, "R5/PT1S", Fails("only allowed in a period")),
            (Due, "P10000Y", Fails("beyond 9999-12-31T23:59:59.999Z")),
            (Due, "PT99999999999999999999S", Fails("too large")),
            (Due, "P18446744073709551615Y", Fails("too large")),
            // dueTime, Go durations.
            (Due, "1h2m3.5s", At(NOW + HOUR + 2 * MINUTE + 3_500)),
            (Due, "10ms", At(NOW + 10)),
            (Due, "1us", At(NOW + 1)),
            (Due, "1\u{b5}s", At(NOW + 1)),
            (Due, "1\u{3bc}s", At(NOW + 1)),
            (Due, "300ns", At(NOW + 1)),
            (Due, "1.5h", At(NOW + 90 * MINUTE)),
            (Due, ".5s", At(NOW + 500)),
            (Due, "1.0000000001s", At(NOW + SECOND)),
            (Due, "1s1s", At(NOW + 2 * SECOND)),
            (Due, "0s", At(NOW)),
            (Due, "0", At(NOW)),
            (Due, "+5s", At(NOW + 5 * SECOND)),
            (Due, "-5s", Fails("negative durations are not allowed")),
            (Due, "5", Fails("missing unit")),
            (Due, "5d", Fails("unknown unit \"d\"")),
            (Due, "1H", Fails("unknown unit \"H\"")),
            (Due, "1h 2m", Fails("unknown unit \"h \"")),
            (Due, ".s", Fails("malformed number")),
            (Due, "2562048h", Fails("at most 2562047h47m16.854775807s")),
            (Due, "tomorrow", Fails("expected an ISO-8601 duration")),
            (Due, " 5s", Fails("expected an ISO-8601 duration")),
            // dueTime, RFC3339.
            (Due, "2026-11-25T17:00:00Z", At(NOV_25)),
            (Due, "2026-11-25T19:00:00+02:00", At(NOV_25)),
            (Due, "2026-11-25T12:30:00-04:30", At(NOV_25)),
            (Due, "2026-11-25T17:00:00.1234Z", At(NOV_25 + 124)),
            (Due, "2026-11-25T17:00:00.000000001Z", At(NOV_25 + 1)),
            (Due, "2026-11-25T17:00:00.0000000009Z", At(NOV_25)),
            (Due, "2020-10-02T15:00:00Z", At(1_601_650_800_000)),
            (Due, "2028-02-29T00:00:00Z", At(1_835_395_200_000)),
            (
                Due,
                "2026-02-29T00:00:00Z",
                Fails("day 29 is out of range 1..=28"),
            ),
            (
                Due,
                "2026-11-25T24:00:00Z",
                Fails("hour 24 is out of range"),
            ),
            (
                Due,
                "2026-11-25T23:59:60Z",
                Fails("second 60 is out of range"),
            ),
            (Due, "2026-11-25 17:00:00Z", Fails("expected 'T'")),
            (Due, "2026-11-25T17:00:00z", Fails("expected the time zone")),
            (Due, "2026-11-25T17:00:00", Fails("expected the time zone")),
            (
                Due,
                "2026-11-25T17:00:00+0200",
                Fails("expected the time zone"),
            ),
            (Due, "2026-11-25T17:00:00+24:00", Fails("offset hour 24")),
            (
                Due,
                "2026-11-25T17:00:00.Z",
                Fails("expected digits after '.'"),
            ),
            (Due, "2026-11-25", Fails("an RFC3339 time looks like")),
            (Due, "1969-12-31T23:59:59Z", Fails("before the Unix epoch")),
            (Due, "9999-12-31T23:59:59.9999Z", Fails("beyond")),
            // period.
            (Per, "", Nothing),
            (Per, "PT1S", Every(SECOND, None)),
            (Per, "R5/PT1M30S", Every(90 * SECOND, Some(5))),
            (Per, "R/PT1S", Every(SECOND, None)),
            (Per, "R4294967295/PT1S", Every(SECOND, Some(u32::MAX))),
            (Per, "P1D", Every(DAY, None)),
            (Per, "P1W", Every(7 * DAY, None)),
            (Per, "PT0.25S", Every(250, None)),
            (Per, "500ms", Every(500, None)),
            (Per, "2h30m", Every(150 * MINUTE, None)),
            (Per, "0h0m9s0ms", Every(9 * SECOND, None)),
            (Per, "1ns", Every(1, None)),
            (Per, "R0/PT1S", Fails("repetitions must be at least 1")),
            (Per, "R00/PT1S", Fails("repetitions must be at least 1")),
            (Per, "R-1/PT1S", Fails("must be a whole number")),
            (Per, "R4294967296/PT1S", Fails("at most 4294967295")),
            (Per, "R5PT1S", Fails("expected '/'")),
            (Per, "R5", Fails("expected '/'")),
            (Per, "R5/", Fails("starts with 'P'")),
            (Per, "0s", Fails("longer than zero")),
            (Per, "PT0S", Fails("longer than zero")),
            (Per, "0", Fails("longer than zero")),
            (Per, "P1M", Fails("years and months have no fixed length")),
            (
                Per,
                "R3/P1Y",
                Fails("years and months have no fixed length"),
            ),
            (Per, "2026-11-25T17:00:00Z", Fails("not a point in time")),
            (Per, "-1s", Fails("negative")),
            // ttl: durations count from the due time.
            (Ttl, "", Nothing),
            (Ttl, "PT1M", At(DUE_AT + MINUTE)),
            (Ttl, "1h", At(DUE_AT + HOUR)),
            (Ttl, "0s", At(DUE_AT)),
            (Ttl, "2026-11-25T17:00:00Z", At(NOV_25)),
            (
                Ttl,
                "2026-01-31T12:00:05Z",
                Fails("before the due time 2026-01-31T12:00:10Z"),
            ),
            (Ttl, "R2/PT1M", Fails("only allowed in a period")),
            (Ttl, "soon", Fails("expected an ISO-8601 duration")),
        ];
        assert!(cases.len() >= 30);
        for (field, value, want) in cases {
            let name = match field {
                Field::Due => DUE_FIELD,
                Field::Period => PERIOD_FIELD,
                Field::Ttl => TTL_FIELD,
            };
            match (want, run(*field, value)) {
                (Fails(part), Err(error)) => {
                    let message = error.to_string();
                    let prefix = format!("invalid {name} {value:?}: ");
                    assert!(
                        message.starts_with(&prefix) && message.contains(part),
                        "{name} {value:?}: error {message:?} should contain {part:?}"
                    );
                }
                (want, got) => assert_eq!(got.as_ref(), Ok(want), "{name} {value:?}"),
            }
        }
    }

    #[test]
    fn error_names_the_field_and_the_value() {
        let error = parse_period("R0/PT1S").unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"invalid period "R0/PT1S": repetitions must be at least 1"#
        );
        assert_eq!(
            error,
            ScheduleError::Invalid {
                field: "period",
                value: "R0/PT1S".to_owned(),
                reason: "repetitions must be at least 1".to_owned(),
            }
        );
    }

    #[test]
    fn calendar_arithmetic_follows_go_add_date() {
        // Dapr's own test (dapr/kit time_test.go): P1Y2M3D from 2020-02-03T11:12:13.
        assert_eq!(
            parse_due("P1Y2M3D", 1_580_728_333_000),
            Ok(1_617_707_533_000)
        );
        // 2019-02-03T11:12:13Z + P1Y2M3D = 2020-04-06T11:12:13Z.
        assert_eq!(
            parse_due("P1Y2M3D", 1_549_192_333_000),
            Ok(1_586_171_533_000)
        );
        // 2024-01-31 + P1M = "2024-02-31" = 2024-03-02, 2024 being a leap year.
        assert_eq!(parse_due("P1M", 1_706_659_200_000), Ok(1_709_337_600_000));
        // A time of day and sub-day components survive the month shift.
        assert_eq!(
            parse_due("P1MT1H0.5S", 1_706_659_200_000),
            Ok(1_709_337_600_000 + HOUR + 500)
        );
    }

    #[test]
    fn schedule_counts_ttl_from_the_due_time() {
        let schedule = parse_schedule("PT10S", "R3/PT1S", "PT1M", NOW).unwrap();
        assert_eq!(
            schedule,
            Schedule {
                due_at_ms: NOW + 10 * SECOND,
                period: Some(Period {
                    every_ms: SECOND,
                    repetitions: Some(3),
                }),
                expires_at_ms: Some(NOW + 70 * SECOND),
            }
        );
        // Each field is checked in turn, and the error names the one at fault.
        let error = parse_schedule("PT10S", "R0/PT1S", "bad", NOW).unwrap_err();
        assert!(error.to_string().starts_with("invalid period"), "{error}");
        let error = parse_schedule("PT10S", "PT1S", "bad", NOW).unwrap_err();
        assert!(error.to_string().starts_with("invalid ttl"), "{error}");
    }

    #[test]
    fn ttl_already_past_is_rejected() {
        // Due a minute ago (an RFC3339 due time may be in the past); 30 s after it is over.
        let error = parse_ttl("PT30S", NOW, NOW - MINUTE).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("already expired at 2026-01-31T11:59:30Z"),
            "{error}"
        );
        assert_eq!(parse_ttl("PT2M", NOW, NOW - MINUTE), Ok(Some(NOW + MINUTE)));
    }

    /// Every due instant of `schedule`, firing each one as it comes (at most `limit`).
    fn firings(schedule: &Schedule, limit: usize) -> Vec<u64> {
        let mut due = schedule.due_at_ms;
        let mut fired = vec![due];
        while fired.len() < limit {
            let count = u32::try_from(fired.len()).unwrap();
            match schedule.next_after(due, count) {
                Some(next) => {
                    assert!(next > due);
                    due = next;
                    fired.push(next);
                }
                None => break,
            }
        }
        fired
    }

    #[test]
    fn one_shot_fires_once() {
        let schedule = parse_schedule("PT5S", "", "", NOW).unwrap();
        assert_eq!(firings(&schedule, 10), [NOW + 5 * SECOND]);
        // A ttl does not make it repeat.
        let schedule = parse_schedule("PT5S", "", "PT1H", NOW).unwrap();
        assert_eq!(firings(&schedule, 10), [NOW + 5 * SECOND]);
    }

    #[test]
    fn repetitions_count_the_first_firing() {
        let schedule = parse_schedule("", "R3/PT1S", "", NOW).unwrap();
        assert_eq!(
            firings(&schedule, 10),
            [NOW, NOW + SECOND, NOW + 2 * SECOND]
        );
        assert_eq!(schedule.next_after(NOW + 2 * SECOND, 3), None);
        let schedule = parse_schedule("", "R1/PT1S", "", NOW).unwrap();
        assert_eq!(firings(&schedule, 10), [NOW]);
    }

    #[test]
    fn ttl_ends_the_schedule_and_is_inclusive() {
        let schedule = parse_schedule("", "PT1S", "PT2.5S", NOW).unwrap();
        assert_eq!(
            firings(&schedule, 10),
            [NOW, NOW + SECOND, NOW + 2 * SECOND]
        );
        // A tick exactly at the expiry still fires, as in Dapr's Scheduler.
        let schedule = parse_schedule("", "PT1S", "PT2S", NOW).unwrap();
        assert_eq!(
            firings(&schedule, 10),
            [NOW, NOW + SECOND, NOW + 2 * SECOND]
        );
        // Repetitions and ttl together: whichever comes first ends it (Dapr's docs).
        let schedule = parse_schedule("", "R10/PT1S", "PT1S", NOW).unwrap();
        assert_eq!(firings(&schedule, 20), [NOW, NOW + SECOND]);
        let schedule = parse_schedule("", "R2/PT1S", "PT1H", NOW).unwrap();
        assert_eq!(firings(&schedule, 20), [NOW, NOW + SECOND]);
    }

    #[test]
    fn unlimited_keeps_going() {
        for period in ["PT1S", "R/PT1S", "1s"] {
            let schedule = parse_schedule("", period, "", NOW).unwrap();
            let fired = firings(&schedule, 10_000);
            assert_eq!(fired.len(), 10_000, "{period}");
            assert_eq!(fired.last(), Some(&(NOW + 9_999 * SECOND)), "{period}");
        }
        // Running out of u64 ends the schedule rather than wrapping.
        let schedule = Schedule {
            due_at_ms: u64::MAX - 10,
            period: Some(Period {
                every_ms: SECOND,
                repetitions: None,
            }),
            expires_at_ms: None,
        };
        assert_eq!(schedule.next_after(u64::MAX - 10, 1), None);
    }

    #[test]
    fn durations_format_as_go_does_and_parse_back() {
        let cases = [
            (0, "0s"),
            (1, "1ms"),
            (999, "999ms"),
            (1_000, "1s"),
            (1_010, "1.01s"),
            (1_500, "1.5s"),
            (MINUTE, "1m0s"),
            (HOUR, "1h0m0s"),
            (HOUR + 2 * MINUTE + 3_500, "1h2m3.5s"),
            (DAY, "24h0m0s"),
        ];
        for (ms, text) in cases {
            assert_eq!(format_duration_ms(ms), text);
            assert_eq!(parse_due(text, NOW), Ok(NOW + ms), "{text}");
        }
        for ms in [1, 7, 999, 1_001, 59_999, 3_599_999, 90 * DAY + 1] {
            let text = format_duration_ms(ms);
            let period = parse_period(&text).unwrap().unwrap();
            assert_eq!(period.every_ms, ms, "{text}");
        }
    }

    #[test]
    fn calendar_conversions_round_trip() {
        for days in [-719_468, -1, 0, 59, 365, 11_016, 20_484, 2_932_896] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(fmt_instant(MAX_INSTANT_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(fmt_instant(NOW), "2026-01-31T12:00:00Z");
    }
}
