//! Jobs of Dapr's Jobs API (`/v1.0-alpha1/jobs/{name}`, `ScheduleJobAlpha1`): the job's
//! name, its `schedule`, `dueTime`, `repeats`, `ttl`, `data` and `failurePolicy`, parsed
//! and checked as daprd's Scheduler checks them, and when a job fires.
//!
//! This module only parses and computes: storing, replicating and delivering jobs is done
//! elsewhere. As in [`crate::schedule`], every instant is wall-clock time in Unix-epoch
//! milliseconds (UTC) and "now" is passed in, so that parsing is deterministic.
//!
//! # Accepted forms
//!
//! | field | forms |
//! |---|---|
//! | `schedule` | 6-field cron with seconds (`*/2 * * * * *`, `0 30 9 * * MON-FRI`); `@every <Go duration>` (`@every 1h30m`, `@every 500ms`); `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`; an optional `TZ=UTC `/`CRON_TZ=UTC ` prefix before a cron or a descriptor |
//! | `dueTime` | RFC3339 time, Go duration or ISO-8601 duration without repetitions, counted from now ([`schedule::parse_due`]) |
//! | `ttl` | the same forms, a duration counted from the due time, or from now without one ([`schedule::parse_ttl`]) |
//! | `repeats` | 1 ..= 2^32-1 firings in all; absent: no limit |
//! | `data` | at most [`MAX_JOB_DATA_BYTES`] bytes |
//! | `failurePolicy` | `drop`, or `constant` with an `interval` (Go duration; default 0) and `maxRetries` (absent: no limit); absent: constant, 1 s, 3 retries |
//!
//! Cron fields are `second minute hour day-of-month month day-of-week`, with `*`, `?` (the
//! same as `*`), numbers, `a-b` ranges, `/step` steps (`5/15` is `5-59/15`), `,` lists,
//! and the names `JAN`-`DEC` and `SUN`-`SAT` (any case) in the month and day-of-week
//! fields. Day of week 0 is Sunday, 6 Saturday. The descriptors are the cron lines Dapr's
//! docs give: `@yearly` is `0 0 0 1 1 *`, `@monthly` `0 0 0 1 * *`, `@weekly`
//! `0 0 0 * * 0`, `@daily` `0 0 0 * * *`, `@hourly` `0 0 * * * *`.
//!
//! # Semantics, and where they come from
//!
//! Read in `dapr/dapr` `pkg/api/universal/jobs.go` (daprd's checks, which forward the job to
//! the Scheduler verbatim), in the Scheduler's job library `diagridio/go-etcd-cron`
//! (`internal/scheduler/{builder,repeats,oneshot}.go`, `internal/counter/counter.go`,
//! `internal/api/validator/validator.go`), in Dapr's cron parser `dapr/kit` `cron/{parser,
//! spec,constantdelay}.go` (a fork of `robfig/cron`), in the docs pages "Jobs API
//! reference" and "Features and concepts" (jobs), and in the release notes of Dapr 1.18.3.
//!
//! * At least one of `schedule` and `dueTime`. Without a schedule the job fires once, at
//!   its due time: `repeats` above 1 and a `ttl` then need a schedule (the Scheduler
//!   refuses them: "job must have a schedule to repeat", "… to have a ttl").
//! * The first firing is the due time when there is one, even off the cron's grid; every
//!   later one is the schedule's next instant strictly after the previous firing's due
//!   instant. Without a due time, the first firing is the schedule's first instant after
//!   registration: `@every 1s` registered at `t` fires at `t+1s`, `t+2s`, …
//! * `@every d` adds `d` exactly (sub-second too, as Dapr's fork of the parser does); a
//!   cron fires on whole seconds.
//! * `repeats` counts every firing, the first included; a firing given up under the
//!   failure policy counts too, as in the Scheduler's counter. Dapr refuses 0 ("defined
//!   repeats must be greater than 0"); a negative value is refused as well.
//! * A relative `ttl` counts from the due time (from registration without one); an expiry
//!   before the due time is refused ("ttl must be greater than due time"). Expiry is
//!   inclusive: a firing exactly at it still happens (`next.After(exp)` ends the job).
//! * Names follow the Scheduler's validator: with `-`, `_`, `:` and spaces left out and
//!   letters lowered, each `||`-separated part must be a DNS-1123 subdomain (letters,
//!   digits and inner dots, at most 253 characters). So `/`, a lone `|`, `..` and an empty
//!   part are refused.
//! * `failurePolicy` `constant` retries a failed firing every `interval`, `maxRetries`
//!   times after the first attempt (`maxRetries >= attempts` tries again), then gives the
//!   firing up and moves to the next one; `drop` gives it up at once. Without a policy
//!   the Scheduler stores constant, 1 s, 3 retries.
//! * Data: daprd bounds a job only by its request body (`--max-body-size`, 4 MiB by
//!   default) and the Scheduler adds no bound of its own. A Rookery job is replicated to
//!   every placement node through Raft, so it may carry at most 1 MiB
//!   ([`MAX_JOB_DATA_BYTES`]); reminders, far more numerous, carry 64 KiB.
//!
//! Deliberate differences from Dapr:
//!
//! * Cron is evaluated in UTC, the one zone every host agrees on; Dapr uses the Scheduler
//!   host's local zone (`time.Local`). A `TZ=`/`CRON_TZ=` prefix naming another
//!   zone is refused rather than followed, since Rookery carries no time-zone database.
//!   As in Dapr 1.18.3, a prefix before `@every` and a prefix with nothing after it are
//!   refused.
//! * Refused where Dapr accepts a job that never fires, or fires without end: a cron no
//!   date matches (`0 0 0 30 2 *`), a first firing already past the `ttl` (the Scheduler
//!   accepts it and then deletes it unfired), a `ttl` already past, and `@every 0s`
//!   without `repeats` (a tight loop; with `repeats` it is accepted, as Dapr's own tests
//!   use it). A day of week 7, which some crons take for Sunday, is refused as Dapr does.
//! * An empty `schedule`, `dueTime` or `ttl` string is taken as absent; Dapr refuses it as
//!   unparsable. A bare duration as `schedule` (`2h45m`, which one docs page shows) is
//!   refused by Dapr's parser as by this one, whose error suggests `@every 2h45m`.
//! * Cron is computed by the `croner` crate, whose day matching is Dapr's: when both
//!   day-of-month and day-of-week are restricted a day matching either fires
//!   (`0 0 0 1 * MON` is the 1st and every Monday); when one is `*` the other decides.
//!   Its extensions (`L`, `W`, `#`, `+`, years) are refused here, as Dapr refuses them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::schedule::{self, ScheduleError, MAX_INSTANT_MS};

/// Longest job name, in bytes, before the Scheduler's per-part rule (see the module doc).
pub const MAX_JOB_NAME_BYTES: usize = 1024;
/// Largest job payload, in bytes: jobs are replicated to every placement node.
pub const MAX_JOB_DATA_BYTES: usize = 1024 * 1024;
/// The type URL of a protobuf `google.protobuf.Value`: a job's data given as JSON (over
/// HTTP) is kept as one, and an HTTP app receives it as that JSON again, as with daprd.
pub const JSON_VALUE_TYPE_URL: &str = "type.googleapis.com/google.protobuf.Value";
/// The retry interval of the failure policy a job gets when it names none (Dapr's).
pub const DEFAULT_RETRY_INTERVAL_MS: u64 = 1_000;
/// The retries of the failure policy a job gets when it names none (Dapr's).
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// The Scheduler's bound on each `||` part of a name: a DNS-1123 subdomain's length.
const MAX_NAME_PART_BYTES: usize = 253;

// Field names as a Dapr client spells them in its request, so that errors point at it.
const NAME_FIELD: &str = "name";
const SCHEDULE_FIELD: &str = "schedule";
const TTL_FIELD: &str = "ttl";
const REPEATS_FIELD: &str = "repeats";
const DATA_FIELD: &str = "data";
const FAILURE_POLICY_FIELD: &str = "failurePolicy";

/// A job request as a client sent it, before any check: what the HTTP and gRPC front ends
/// fill in from `POST /v1.0-alpha1/jobs/{name}` or `ScheduleJobAlpha1`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobInput {
    pub name: String,
    pub schedule: Option<String>,
    pub due_time: Option<String>,
    /// Signed, so that a negative count is refused with a clear error here.
    pub repeats: Option<i64>,
    pub ttl: Option<String>,
    pub data: Vec<u8>,
    /// What `data` holds: the type URL of the protobuf `Any` a gRPC client sent, or
    /// [`JSON_VALUE_TYPE_URL`] for the JSON an HTTP client sent (kept encoded as a
    /// `google.protobuf.Value`, as daprd keeps it); empty: raw bytes.
    pub data_type_url: String,
    /// Whether the job may replace one of the same name (without it, a conflict).
    pub overwrite: bool,
    pub failure_policy: Option<FailurePolicyInput>,
}

/// A `failurePolicy` as requested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailurePolicyInput {
    /// Give a failed firing up at once.
    Drop,
    /// Retry a failed firing every `interval`, at most `max_retries` times.
    Constant {
        /// A Go duration (`10s`, `200ms`; protobuf JSON's `1.5s` is one too); absent: 0.
        interval: Option<String>,
        /// Absent: no limit.
        max_retries: Option<u32>,
    },
}

/// What a job does when a firing fails to be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailurePolicy {
    /// The firing is given up at once.
    Drop,
    /// The firing is retried every `interval_ms`, at most `max_retries` times (`None`: no
    /// limit), then given up.
    Constant {
        interval_ms: u64,
        max_retries: Option<u32>,
    },
}

impl Default for FailurePolicy {
    /// Dapr's default: constant, every second, three retries.
    fn default() -> Self {
        FailurePolicy::Constant {
            interval_ms: DEFAULT_RETRY_INTERVAL_MS,
            max_retries: Some(DEFAULT_MAX_RETRIES),
        }
    }
}

impl FailurePolicy {
    /// After `failed_attempts` failed attempts at one firing (1 after the first), how long
    /// after the last attempt's due instant to try again; `None`: give the firing up (it
    /// still counts towards `repeats`) and go on to the next one.
    pub fn retry_delay_ms(&self, failed_attempts: u32) -> Option<u64> {
        match *self {
            FailurePolicy::Drop => None,
            FailurePolicy::Constant {
                interval_ms,
                max_retries,
            } => match max_retries {
                Some(max) if failed_attempts > max => None,
                _ => Some(interval_ms),
            },
        }
    }
}

/// A job input that cannot be accepted. [`JobError::field`] names the request field at
/// fault, and every message names it too.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum JobError {
    #[error("invalid job name {name:?}: {reason}")]
    Name { name: String, reason: String },
    /// Neither `schedule` nor `dueTime` was given.
    #[error("a job needs a schedule or a dueTime, and this one has neither")]
    NoSchedule,
    #[error("invalid schedule {value:?}: {reason}")]
    Schedule { value: String, reason: String },
    /// `dueTime` or `ttl`: the error of [`crate::schedule`], which names its field.
    #[error(transparent)]
    Time(#[from] ScheduleError),
    #[error("invalid repeats {value}: {reason}")]
    Repeats { value: i64, reason: String },
    #[error("invalid data: {len} bytes, more than the {MAX_JOB_DATA_BYTES} bytes a job may carry")]
    DataTooLarge { len: usize },
    #[error("invalid failurePolicy: {reason}")]
    FailurePolicy { reason: String },
}

impl JobError {
    /// The request field at fault, as a Dapr client spells it: `name`, `schedule`,
    /// `dueTime`, `ttl`, `repeats`, `data` or `failurePolicy`.
    pub fn field(&self) -> &'static str {
        match self {
            JobError::Name { .. } => NAME_FIELD,
            JobError::NoSchedule | JobError::Schedule { .. } => SCHEDULE_FIELD,
            JobError::Time(ScheduleError::Invalid { field, .. }) => field,
            JobError::Repeats { .. } => REPEATS_FIELD,
            JobError::DataTooLarge { .. } => DATA_FIELD,
            JobError::FailurePolicy { .. } => FAILURE_POLICY_FIELD,
        }
    }
}

/// Checks a job name as the Scheduler does (see the module doc). daprd trims the spaces
/// around a name taken from the URL before this check; that is the front end's to do.
pub fn validate_job_name(name: &str) -> Result<(), JobError> {
    name_problem(name).map_or(Ok(()), |reason| {
        Err(JobError::Name {
            name: name.to_owned(),
            reason,
        })
    })
}

fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.len() > MAX_JOB_NAME_BYTES {
        return Some(format!("longer than {MAX_JOB_NAME_BYTES} bytes"));
    }
    // The Scheduler leaves these out before checking, so they are allowed anywhere.
    let kept: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ':' | ' '))
        .collect();
    for part in kept.split("||") {
        if let Some(bad) = part
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '.'))
        {
            return Some(format!(
                "{bad:?} is not allowed: a name is made of letters, digits, '.', '-', '_', ':' \
                 and spaces, with '||' between parts"
            ));
        }
        if part.is_empty() {
            return Some(
                "has an empty part: nothing but '-', '_', ':' or spaces, or nothing, \
                 before, between or after '||'"
                    .to_owned(),
            );
        }
        if part.len() > MAX_NAME_PART_BYTES {
            return Some(format!(
                "a part is longer than {MAX_NAME_PART_BYTES} characters, \
                 '-', '_', ':' and spaces left out"
            ));
        }
        if part.split('.').any(str::is_empty) {
            return Some("a '.' must stand between letters or digits".to_owned());
        }
    }
    None
}

/// A job's `schedule`: a cron line or a fixed interval. Kept, stored and compared as the
/// string it was parsed from; parsing it again gives the same schedule.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobSchedule {
    source: String,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// `@every`: fires every `every_ms` (may be zero: see the module doc).
    Every { every_ms: u64 },
    /// Evaluated in UTC, on whole seconds.
    Cron(Box<Cron>),
}

impl JobSchedule {
    /// Parses a `schedule` string (see the module doc for its forms).
    pub fn parse(value: &str) -> Result<JobSchedule, JobError> {
        let kind = parse_kind(value.trim()).map_err(|reason| JobError::Schedule {
            value: value.to_owned(),
            reason,
        })?;
        Ok(JobSchedule {
            source: value.to_owned(),
            kind,
        })
    }

    /// The string it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The interval of an `@every` schedule, in ms; `None` for a cron.
    pub fn interval_ms(&self) -> Option<u64> {
        match self.kind {
            Kind::Every { every_ms } => Some(every_ms),
            Kind::Cron(_) => None,
        }
    }

    /// The schedule's first instant after `after_ms`: `after_ms` plus the interval of
    /// `@every`, or the first whole second past `after_ms` that a cron matches. `None`
    /// when there is none before [`MAX_INSTANT_MS`] (or the cron library's last year).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let next = match &self.kind {
            Kind::Every { every_ms } => after_ms.checked_add(*every_ms)?,
            Kind::Cron(cron) => {
                // Matches at whole seconds strictly after the second `after_ms` lies in
                // are all strictly after `after_ms`.
                let second = i64::try_from(after_ms - after_ms % 1_000).ok()?;
                let from = DateTime::<Utc>::from_timestamp_millis(second)?;
                let next = cron.find_next_occurrence(&from, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()?
            }
        };
        (next <= MAX_INSTANT_MS).then_some(next)
    }
}

impl FromStr for JobSchedule {
    type Err = JobError;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        JobSchedule::parse(value)
    }
}

impl TryFrom<String> for JobSchedule {
    type Error = JobError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        JobSchedule::parse(&value)
    }
}

impl From<JobSchedule> for String {
    fn from(schedule: JobSchedule) -> String {
        schedule.source
    }
}

impl PartialEq for JobSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for JobSchedule {}

impl fmt::Debug for JobSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JobSchedule").field(&self.source).finish()
    }
}

impl fmt::Display for JobSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

const EVERY: &str = "@every";

/// The descriptors and the cron lines they stand for, as Dapr's docs give them.
const DESCRIPTORS: [(&str, &str); 7] = [
    ("@yearly", "0 0 0 1 1 *"),
    ("@annually", "0 0 0 1 1 *"),
    ("@monthly", "0 0 0 1 * *"),
    ("@weekly", "0 0 0 * * 0"),
    ("@daily", "0 0 0 * * *"),
    ("@midnight", "0 0 0 * * *"),
    ("@hourly", "0 0 * * * *"),
];

fn parse_kind(value: &str) -> Result<Kind, String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let spec = strip_zone(value)?;
    if let Some(rest) = spec.strip_prefix(EVERY) {
        let duration = rest.trim_start();
        if duration.len() == rest.len() {
            return Err(format!(
                "expected \"{EVERY} <duration>\", as in \"{EVERY} 1h30m\""
            ));
        }
        let every_ms = schedule::parse_go_duration_ms(duration)
            .map_err(|reason| format!("interval {reason}"))?;
        return Ok(Kind::Every { every_ms });
    }
    let line = if spec.starts_with('@') {
        DESCRIPTORS
            .iter()
            .find(|(name, _)| *name == spec)
            .map(|(_, line)| *line)
            .ok_or_else(|| {
                format!(
                    "unknown descriptor {spec:?}: expected \"{EVERY} <duration>\", @yearly, \
                     @annually, @monthly, @weekly, @daily, @midnight or @hourly"
                )
            })?
    } else {
        spec
    };
    parse_cron(line).map(|cron| Kind::Cron(Box::new(cron)))
}

/// Takes off a `TZ=`/`CRON_TZ=` prefix, which may only name UTC.
fn strip_zone(value: &str) -> Result<&str, String> {
    let Some(prefixed) = value
        .strip_prefix("TZ=")
        .or_else(|| value.strip_prefix("CRON_TZ="))
    else {
        return Ok(value);
    };
    let (zone, rest) = prefixed
        .split_once(char::is_whitespace)
        .unwrap_or((prefixed, ""));
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Err("a time zone prefix needs a schedule after it".to_owned());
    }
    if rest.starts_with(EVERY) {
        return Err(format!(
            "a time zone prefix has no meaning before {EVERY}, which has no time of day"
        ));
    }
    if !matches!(zone, "UTC" | "Etc/UTC") {
        return Err(format!(
            "time zone {zone:?} is not supported: schedules are evaluated in UTC"
        ));
    }
    Ok(rest)
}

/// One cron field: its name, bounds, and the names of its values (the first name stands
/// for `min`).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 6] = [
    Field {
        name: "second",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 6,
        names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    },
];

/// A 6-field cron line in Dapr's grammar, checked field by field, then handed to croner
/// in its plain numeric form.
fn parse_cron(line: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        if let Some(hint) = interval_hint(line) {
            return Err(format!(
                "a duration is not a schedule: for a fixed interval write {hint}"
            ));
        }
        return Err(format!(
            "expected 6 fields (second minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    }
    let mut plain = Vec::with_capacity(FIELDS.len());
    for (text, field) in fields.iter().zip(&FIELDS) {
        let normal = normalise_field(text, field)
            .map_err(|reason| format!("{} field {text:?}: {reason}", field.name))?;
        plain.push(normal);
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
        .parse(&plain.join(" "))
        .map_err(|error| error.to_string())?;
    // A line no date matches (February 30) would never fire: refuse it now.
    cron.find_next_occurrence(&DateTime::<Utc>::UNIX_EPOCH, false)
        .map_err(|_| "no date matches it, so it would never fire".to_owned())?;
    Ok(cron)
}

/// What to write instead of a bare duration: `@every` takes Go durations only, and an
/// ISO-8601 period's repetitions are the job's `repeats`.
fn interval_hint(line: &str) -> Option<String> {
    if schedule::parse_go_duration_ms(line).is_ok() {
        return Some(format!("\"{EVERY} {line}\""));
    }
    let period = schedule::parse_period(line).ok()??;
    let every = format!(
        "\"{EVERY} {}\"",
        schedule::format_duration_ms(period.every_ms)
    );
    Some(match period.repetitions {
        Some(count) => format!("{every} with repeats {count}"),
        None => every,
    })
}

/// A field in croner's plain form: names turned into numbers, `?` into `*`, `n/step`
/// into `n-max/step`, and a field with a `*` (or `*/1`) anywhere into `*`: such a field
/// matches everything, and for the day fields `*` is what makes the other decide (Dapr's
/// "star bit").
fn normalise_field(text: &str, field: &Field) -> Result<String, String> {
    let mut ranges = Vec::new();
    for range in text.split(',') {
        let (span, step) = match range.split_once('/') {
            Some((span, step)) => (span, Some(step)),
            None => (range, None),
        };
        let step = step.map(|step| step_of(step, field)).transpose()?;
        if span == "*" || span == "?" {
            match step {
                None | Some(1) => return Ok("*".to_owned()),
                Some(step) => ranges.push(format!("*/{step}")),
            }
            continue;
        }
        let (low, high) = match span.split_once('-') {
            Some((low, high)) => (value_of(low, field)?, value_of(high, field)?),
            // `n/step` runs from n to the end of the field, as in Dapr.
            None if step.is_some() => (value_of(span, field)?, field.max),
            None => {
                let value = value_of(span, field)?;
                (value, value)
            }
        };
        if low > high {
            return Err(format!("range {low}-{high} runs backwards"));
        }
        ranges.push(match step {
            Some(step) => format!("{low}-{high}/{step}"),
            None if low == high => low.to_string(),
            None => format!("{low}-{high}"),
        });
    }
    Ok(ranges.join(","))
}

fn step_of(step: &str, field: &Field) -> Result<u32, String> {
    if step.contains('/') {
        return Err("more than one '/'".to_owned());
    }
    match number(step) {
        Some(0) => Err("a step must be at least 1".to_owned()),
        Some(step) if step <= field.max => Ok(step),
        Some(step) => Err(format!("step {step} is larger than {}", field.max)),
        None => Err(format!("step {step:?} is not a number")),
    }
}

fn value_of(atom: &str, field: &Field) -> Result<u32, String> {
    let value = if let Some(value) = number(atom) {
        value
    } else if let Some(index) = field
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(atom))
    {
        field.min + u32::try_from(index).unwrap_or(u32::MAX)
    } else if atom.is_empty() {
        return Err("a value is missing (around ',', '-' or '/')".to_owned());
    } else if atom.contains('-') {
        return Err("more than one '-'".to_owned());
    } else if atom == "*" || atom == "?" {
        return Err(format!("{atom:?} cannot be part of a range"));
    } else if field.names.is_empty() {
        return Err(format!("{atom:?} is not a number"));
    } else {
        return Err(format!(
            "{atom:?} is neither a number nor one of {}",
            field.names.join(", ")
        ));
    };
    if value < field.min || value > field.max {
        let sunday = if field.names.first() == Some(&"SUN") {
            ", 0 being Sunday"
        } else {
            ""
        };
        return Err(format!(
            "{value} is out of range {}-{}{sunday}",
            field.min, field.max
        ));
    }
    Ok(value)
}

/// A whole number of ASCII digits (no sign); `None` otherwise or when it overflows.
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A checked job, ready to store: what was asked (the strings kept as given, as Dapr
/// returns them on `GET`), and the instants they resolved to at registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: String,
    /// `None`: fires once, at the due time.
    pub schedule: Option<JobSchedule>,
    /// The `dueTime` as given.
    pub due_time: Option<String>,
    /// The `ttl` as given.
    pub ttl: Option<String>,
    /// Total firings, the first included; `None`: no limit.
    pub repeats: Option<u32>,
    pub data: Vec<u8>,
    /// What `data` holds (see [`JobInput::data_type_url`]).
    #[serde(default)]
    pub data_type_url: String,
    /// Whether the registration may replace a job of the same name.
    pub overwrite: bool,
    pub failure_policy: FailurePolicy,
    /// When it was registered, Unix-epoch ms: without a due time, the schedule counts
    /// from here.
    pub created_at_ms: u64,
    /// The due time, Unix-epoch ms: the first firing. May be in the past (fires at once).
    pub due_at_ms: Option<u64>,
    /// The last instant a firing may still happen at (inclusive), Unix-epoch ms.
    pub expires_at_ms: Option<u64>,
}

impl JobSpec {
    /// Checks a job request made at `now_ms`. The first error found is returned, in
    /// about the order the Scheduler checks: name, data, presence of a schedule, repeats,
    /// schedule, dueTime, ttl, failure policy, then whether the job fires at all.
    pub fn parse(input: JobInput, now_ms: u64) -> Result<JobSpec, JobError> {
        let JobInput {
            name,
            schedule,
            due_time,
            repeats,
            ttl,
            data,
            data_type_url,
            overwrite,
            failure_policy,
        } = input;
        validate_job_name(&name)?;
        if data.len() > MAX_JOB_DATA_BYTES {
            return Err(JobError::DataTooLarge { len: data.len() });
        }
        let present = |value: Option<String>| value.filter(|value| !value.is_empty());
        let (schedule, due_time, ttl) = (present(schedule), present(due_time), present(ttl));
        if schedule.is_none() && due_time.is_none() {
            return Err(JobError::NoSchedule);
        }
        let repeats = repeats.map(check_repeats).transpose()?;
        if schedule.is_none() && repeats.is_some_and(|count| count > 1) {
            return Err(JobError::Repeats {
                value: repeats.map_or(0, i64::from),
                reason: "a job without a schedule fires once: more repeats need a schedule"
                    .to_owned(),
            });
        }
        if let (None, Some(ttl)) = (&schedule, &ttl) {
            return Err(ttl_error(
                ttl,
                "a job without a schedule fires once, at its dueTime: a ttl needs a schedule"
                    .to_owned(),
            ));
        }
        let schedule = schedule.as_deref().map(JobSchedule::parse).transpose()?;
        let due_at_ms = due_time
            .as_deref()
            .map(|due| schedule::parse_due(due, now_ms))
            .transpose()?;
        let expires_at_ms = match (&ttl, due_at_ms) {
            (Some(ttl), Some(due_at_ms)) => schedule::parse_ttl(ttl, now_ms, due_at_ms)?,
            // No due time: a relative ttl counts from now, as a due time would.
            (Some(ttl), None) => Some(ttl_from_now(ttl, now_ms)?),
            (None, _) => None,
        };
        let failure_policy = failure_policy
            .map(failure_policy_of)
            .transpose()?
            .unwrap_or_default();
        if let Some(schedule) = &schedule {
            if schedule.interval_ms() == Some(0) && repeats.is_none() {
                return Err(JobError::Schedule {
                    value: schedule.source.clone(),
                    reason: "an interval of zero fires without pause: \
                             it needs repeats to bound it"
                        .to_owned(),
                });
            }
        }
        let spec = JobSpec {
            name,
            schedule,
            due_time,
            ttl,
            repeats,
            data,
            data_type_url,
            overwrite,
            failure_policy,
            created_at_ms: now_ms,
            due_at_ms,
            expires_at_ms,
        };
        let Some(first) = spec.first_due_ms() else {
            return Err(JobError::Schedule {
                value: spec.schedule.map(String::from).unwrap_or_default(),
                reason: format!(
                    "has no instant after {}",
                    schedule::format_rfc3339_ms(now_ms)
                ),
            });
        };
        if let (Some(expires), Some(ttl)) = (spec.expires_at_ms, &spec.ttl) {
            if first > expires {
                return Err(ttl_error(
                    ttl,
                    format!(
                        "expires at {}, before the first firing at {}: it would never fire",
                        schedule::format_rfc3339_ms(expires),
                        schedule::format_rfc3339_ms(first)
                    ),
                ));
            }
        }
        Ok(spec)
    }

    /// The due instant of the first firing, Unix-epoch ms: the due time, or else the
    /// schedule's first instant after registration. Always `Some` for a spec that
    /// [`JobSpec::parse`] accepted; `None` for a hand-made one that never fires.
    pub fn first_fire_ms(&self) -> Option<u64> {
        if self.repeats == Some(0) {
            return None;
        }
        let first = self.first_due_ms()?;
        self.within_ttl(first)
    }

    /// The due instant of the firing after the one due at `last_fire_ms`, which was
    /// firing number `fired_count` (1 for the first, given-up firings included); `None`
    /// once the job is done: one-shot, repeats used up, or the next instant past the
    /// ttl. With `fired_count` 0 nothing has fired yet: the first firing.
    ///
    /// Counting from the due instant rather than from when the firing actually ran keeps
    /// a late firing from pushing back every later one, as the Scheduler counts from its
    /// last trigger's scheduled time. Never earlier than `last_fire_ms`, and strictly
    /// later unless the schedule is `@every 0s`.
    pub fn next_fire_after(&self, last_fire_ms: u64, fired_count: u32) -> Option<u64> {
        if fired_count == 0 {
            return self.first_fire_ms();
        }
        if self.repeats.is_some_and(|total| fired_count >= total) {
            return None;
        }
        let next = self.schedule.as_ref()?.next_after(last_fire_ms)?;
        self.within_ttl(next)
    }

    fn first_due_ms(&self) -> Option<u64> {
        match (self.due_at_ms, &self.schedule) {
            (Some(due), _) => Some(due),
            (None, Some(schedule)) => schedule.next_after(self.created_at_ms),
            (None, None) => None,
        }
    }

    fn within_ttl(&self, at_ms: u64) -> Option<u64> {
        match self.expires_at_ms {
            Some(expires) if at_ms > expires => None,
            _ => Some(at_ms),
        }
    }
}

fn check_repeats(value: i64) -> Result<u32, JobError> {
    let reason = match u32::try_from(value) {
        Ok(0) => "must be at least 1; leave it out for no limit".to_owned(),
        Ok(count) => return Ok(count),
        Err(_) if value < 0 => "must not be negative".to_owned(),
        Err(_) => format!("must be at most {}", u32::MAX),
    };
    Err(JobError::Repeats { value, reason })
}

/// A `ttl` without a due time: a point counted from now, not yet past.
fn ttl_from_now(ttl: &str, now_ms: u64) -> Result<u64, JobError> {
    let expires = schedule::parse_due(ttl, now_ms).map_err(|error| match error {
        ScheduleError::Invalid { reason, .. } => ttl_error(ttl, reason),
    })?;
    if expires < now_ms {
        return Err(ttl_error(
            ttl,
            format!(
                "already expired at {}",
                schedule::format_rfc3339_ms(expires)
            ),
        ));
    }
    Ok(expires)
}

fn ttl_error(value: &str, reason: String) -> JobError {
    JobError::Time(ScheduleError::Invalid {
        field: TTL_FIELD,
        value: value.to_owned(),
        reason,
    })
}

fn failure_policy_of(input: FailurePolicyInput) -> Result<FailurePolicy, JobError> {
    match input {
        FailurePolicyInput::Drop => Ok(FailurePolicy::Drop),
        FailurePolicyInput::Constant {
            interval,
            max_retries,
        } => {
            let interval_ms = match interval.as_deref() {
                None | Some("") => 0,
                Some(interval) => schedule::parse_go_duration_ms(interval).map_err(|reason| {
                    JobError::FailurePolicy {
                        reason: format!("interval {reason}"),
                    }
                })?,
            };
            Ok(FailurePolicy::Constant {
                interval_ms,
                max_retries,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::format_rfc3339_ms as rfc3339;

    /// 2026-01-31T12:00:00Z, a Saturday.
    const NOW: u64 = 1_769_860_800_000;
    const SECOND: u64 = 1_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;

    fn input(schedule: &str) -> JobInput {
        JobInput {
            name: "job".to_owned(),
            schedule: Some(schedule.to_owned()),
            ..JobInput::default()
        }
    }

    fn spec(input: JobInput) -> JobSpec {
        JobSpec::parse(input, NOW).unwrap()
    }

    /// Every due instant of `spec`, firing each as it comes (at most `limit`).
    fn firings(spec: &JobSpec, limit: usize) -> Vec<u64> {
        let mut fired = Vec::new();
        let mut last = 0;
        while fired.len() < limit {
            let count = u32::try_from(fired.len()).unwrap();
            let Some(next) = spec.next_fire_after(last, count) else {
                break;
            };
            if count > 0 {
                assert!(next >= last, "{next} is before {last}");
            }
            fired.push(next);
            last = next;
        }
        fired
    }

    #[test]
    fn every_accepted_schedule_form() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str)] = &[
            // (schedule, first instant after NOW, the one after it)
            ("* * * * * *", "2026-01-31T12:00:01Z", "2026-01-31T12:00:02Z"),
            ("*/2 * * * * *", "2026-01-31T12:00:02Z", "2026-01-31T12:00:04Z"),
            ("0 30 9 * * MON-FRI", "2026-02-02T09:30:00Z", "2026-02-03T09:30:00Z"),
            ("0 30 9 * * mon-fri", "2026-02-02T09:30:00Z", "2026-02-03T09:30:00Z"),
            ("0 30 9 * * 1-5", "2026-02-02T09:30:00Z", "2026-02-03T09:30:00Z"),
            ("0 30 * * * *", "2026-01-31T12:30:00Z", "2026-01-31T13:30:00Z"),
            ("0 15 3 * * *", "2026-02-01T03:15:00Z", "2026-02-02T03:15:00Z"),
            ("0/30 * * * * *", "2026-01-31T12:00:30Z", "2026-01-31T12:01:00Z"),
            ("10/30 * * * * *", "2026-01-31T12:00:10Z", "2026-01-31T12:00:40Z"),
            ("5-10/2 * * * * *", "2026-01-31T12:00:05Z", "2026-01-31T12:00:07Z"),
            ("1,2,59 * * * * *", "2026-01-31T12:00:01Z", "2026-01-31T12:00:02Z"),
            ("*/1 * * * * *", "2026-01-31T12:00:01Z", "2026-01-31T12:00:02Z"),
            ("? * * ? * ?", "2026-01-31T12:00:01Z", "2026-01-31T12:00:02Z"),
            ("0 0 0 1 JAN,jul *", "2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("0 0 0 * * SUN", "2026-02-01T00:00:00Z", "2026-02-08T00:00:00Z"),
            ("0 0 0 * * 0", "2026-02-01T00:00:00Z", "2026-02-08T00:00:00Z"),
            ("0 0 0 * * 6", "2026-02-07T00:00:00Z", "2026-02-14T00:00:00Z"),
            // Both day fields restricted: either one matching fires (Dapr's OR).
            ("0 0 0 3 * MON", "2026-02-02T00:00:00Z", "2026-02-03T00:00:00Z"),
            // One of them `*` (or `?`, `*/1`, or a list with `*`): the other decides.
            ("0 0 0 3 * *", "2026-02-03T00:00:00Z", "2026-03-03T00:00:00Z"),
            ("0 0 0 3 * ?", "2026-02-03T00:00:00Z", "2026-03-03T00:00:00Z"),
            ("0 0 0 3 * 1,*", "2026-02-03T00:00:00Z", "2026-03-03T00:00:00Z"),
            ("0 0 0 */1 * MON", "2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"),
            ("0 0 0 29 2 *", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"),
            ("  0 0 12 * * *  ", "2026-02-01T12:00:00Z", "2026-02-02T12:00:00Z"),
            ("0\t0\t12 * * *", "2026-02-01T12:00:00Z", "2026-02-02T12:00:00Z"),
            ("@yearly", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"),
            ("@annually", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"),
            ("@monthly", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"),
            ("@weekly", "2026-02-01T00:00:00Z", "2026-02-08T00:00:00Z"),
            ("@daily", "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"),
            ("@midnight", "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"),
            ("@hourly", "2026-01-31T13:00:00Z", "2026-01-31T14:00:00Z"),
            ("@every 1s", "2026-01-31T12:00:01Z", "2026-01-31T12:00:02Z"),
            ("@every 1h30m", "2026-01-31T13:30:00Z", "2026-01-31T15:00:00Z"),
            ("@every 500ms", "2026-01-31T12:00:00.500Z", "2026-01-31T12:00:01Z"),
            ("@every 1.5s", "2026-01-31T12:00:01.500Z", "2026-01-31T12:00:03Z"),
            ("@every 0s", "2026-01-31T12:00:00Z", "2026-01-31T12:00:00Z"),
            ("TZ=UTC 0 0 9 * * *", "2026-02-01T09:00:00Z", "2026-02-02T09:00:00Z"),
            ("CRON_TZ=UTC 0 0 9 * * *", "2026-02-01T09:00:00Z", "2026-02-02T09:00:00Z"),
            ("CRON_TZ=Etc/UTC @daily", "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"),
        ];
        for (text, first, second) in cases {
            let schedule = JobSchedule::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(schedule.as_str(), *text);
            let got = schedule.next_after(NOW).unwrap();
            assert_eq!(rfc3339(got), *first, "{text:?}");
            let then = schedule.next_after(got).unwrap();
            assert_eq!(rfc3339(then), *second, "{text:?}");
        }
        assert_eq!(
            JobSchedule::parse("@every 1h30m").unwrap().interval_ms(),
            Some(90 * MINUTE)
        );
        assert_eq!(JobSchedule::parse("@daily").unwrap().interval_ms(), None);
    }

    #[test]
    fn cron_fires_on_whole_seconds_strictly_after() {
        let schedule = JobSchedule::parse("* * * * * *").unwrap();
        assert_eq!(schedule.next_after(NOW), Some(NOW + SECOND));
        assert_eq!(schedule.next_after(NOW + 1), Some(NOW + SECOND));
        assert_eq!(schedule.next_after(NOW + 999), Some(NOW + SECOND));
        assert_eq!(schedule.next_after(NOW + SECOND), Some(NOW + 2 * SECOND));
        // The end of the supported range ends the schedule.
        assert_eq!(schedule.next_after(MAX_INSTANT_MS), None);
        let every = JobSchedule::parse("@every 1s").unwrap();
        assert_eq!(every.next_after(MAX_INSTANT_MS - 10), None);
        assert_eq!(every.next_after(u64::MAX), None);
    }

    #[test]
    fn every_rejected_schedule_names_its_problem() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("test", "expected 6 fields"),
            ("* * * * *", "expected 6 fields (second minute hour day-of-month month day-of-week), found 5"),
            ("* * * * * * *", "found 7"),
            ("   ", "must not be empty"),
            ("2h45m", "write \"@every 2h45m\""),
            ("PT1H", "write \"@every 1h0m0s\""),
            ("R5/PT1M30S", "write \"@every 1m30s\" with repeats 5"),
            ("60 * * * * *", "second field \"60\": 60 is out of range 0-59"),
            ("* 60 * * * *", "minute field \"60\": 60 is out of range 0-59"),
            ("* * 24 * * *", "hour field \"24\": 24 is out of range 0-23"),
            ("* * * 0 * *", "day-of-month field \"0\": 0 is out of range 1-31"),
            ("* * * 32 * *", "day-of-month field \"32\""),
            ("* * * * 13 *", "month field \"13\": 13 is out of range 1-12"),
            ("* * * * 0 *", "month field \"0\""),
            ("* * * * * 7", "day-of-week field \"7\": 7 is out of range 0-6, 0 being Sunday"),
            ("* * * * * MON-SUN", "range 1-0 runs backwards"),
            ("* * * * * FOO", "\"FOO\" is neither a number nor one of SUN, MON"),
            ("* * * * MON * ", "month field \"MON\": \"MON\" is neither a number nor one of JAN"),
            ("MON * * * * *", "second field \"MON\": \"MON\" is not a number"),
            ("*/0 * * * * *", "a step must be at least 1"),
            ("*/60 * * * * *", "step 60 is larger than 59"),
            ("*/x * * * * *", "step \"x\" is not a number"),
            ("1/2/3 * * * * *", "more than one '/'"),
            ("1-2-3 * * * * *", "more than one '-'"),
            ("*-5 * * * * *", "\"*\" cannot be part of a range"),
            ("1,,2 * * * * *", "a value is missing"),
            ("/5 * * * * *", "a value is missing"),
            ("-5 * * * * *", "a value is missing"),
            ("+5 * * * * *", "\"+5\" is not a number"),
            ("99999999999 * * * * *", "is not a number"),
            ("* * * L * *", "day-of-month field \"L\""),
            ("* * * 15W * *", "day-of-month field \"15W\""),
            ("* * * * * 5#2", "day-of-week field \"5#2\""),
            ("* * * * * +MON", "day-of-week field \"+MON\""),
            ("0 0 0 30 2 *", "never fire"),
            ("0 0 0 31 4,6,9,11 *", "never fire"),
            ("@Daily", "unknown descriptor \"@Daily\""),
            ("@reboot", "unknown descriptor"),
            ("@every", "expected \"@every <duration>\""),
            ("@every1s", "expected \"@every <duration>\""),
            ("@every 5d", "interval \"5d\": unknown unit"),
            ("@every -1s", "negative"),
            ("@every PT1S", "interval \"PT1S\""),
            ("TZ=Europe/Rome 0 0 9 * * *", "time zone \"Europe/Rome\" is not supported"),
            ("CRON_TZ=Local @daily", "time zone \"Local\" is not supported"),
            ("TZ=UTC", "a time zone prefix needs a schedule after it"),
            ("CRON_TZ=UTC   ", "needs a schedule after it"),
            ("CRON_TZ=UTC @every 1h", "no meaning before @every"),
            ("CRON_TZ=Europe/Rome @every 1h", "no meaning before @every"),
        ];
        for (text, part) in cases {
            let error = JobSchedule::parse(text).unwrap_err();
            let message = error.to_string();
            assert_eq!(error.field(), "schedule", "{text:?}");
            assert!(
                message.starts_with(&format!("invalid schedule {text:?}: "))
                    && message.contains(part),
                "{text:?}: error {message:?} should contain {part:?}"
            );
        }
    }

    #[test]
    fn every_1s_with_three_repeats_fires_three_times_a_second_apart() {
        let spec = spec(JobInput {
            repeats: Some(3),
            ..input("@every 1s")
        });
        assert_eq!(spec.first_fire_ms(), Some(NOW + SECOND));
        assert_eq!(
            firings(&spec, 100),
            [NOW + SECOND, NOW + 2 * SECOND, NOW + 3 * SECOND]
        );
        assert_eq!(spec.next_fire_after(NOW + 3 * SECOND, 3), None);
        // Without repeats it goes on.
        let spec = self::spec(input("@every 1s"));
        assert_eq!(firings(&spec, 1_000).len(), 1_000);
    }

    #[test]
    fn even_seconds_cron_fires_only_on_even_seconds() {
        for now in [NOW, NOW + 1, NOW + 1_234, NOW + 1_999, NOW + 2_000] {
            let spec = JobSpec::parse(input("*/2 * * * * *"), now).unwrap();
            let fired = firings(&spec, 200);
            assert_eq!(fired.len(), 200);
            assert!(fired[0] > now && fired[0] - now <= 2 * SECOND, "{now}");
            for pair in fired.windows(2) {
                assert_eq!(pair[1] - pair[0], 2 * SECOND);
            }
            assert!(fired.iter().all(|at| at % (2 * SECOND) == 0));
        }
        // Across a minute boundary: 58, then 0 (not 60, not 2).
        let schedule = JobSchedule::parse("*/2 * * * * *").unwrap();
        assert_eq!(
            schedule.next_after(NOW - 2 * SECOND - 1),
            Some(NOW - 2 * SECOND)
        );
        assert_eq!(schedule.next_after(NOW - 2 * SECOND), Some(NOW));
    }

    #[test]
    fn daily_fires_at_midnight_utc() {
        for text in ["@daily", "@midnight", "0 0 0 * * *"] {
            let spec = spec(input(text));
            let fired = firings(&spec, 30);
            assert_eq!(rfc3339(fired[0]), "2026-02-01T00:00:00Z", "{text}");
            assert!(fired.iter().all(|at| at % DAY == 0), "{text}");
            assert!(
                fired.windows(2).all(|pair| pair[1] - pair[0] == DAY),
                "{text}"
            );
        }
        // Registered exactly at midnight: the next midnight, never the same instant.
        let midnight = NOW + 12 * HOUR;
        let spec = JobSpec::parse(input("@daily"), midnight).unwrap();
        assert_eq!(spec.first_fire_ms(), Some(midnight + DAY));
    }

    #[test]
    fn due_time_delays_the_first_firing() {
        let spec = spec(JobInput {
            due_time: Some("10s".to_owned()),
            repeats: Some(3),
            ..input("@every 1s")
        });
        assert_eq!(spec.due_at_ms, Some(NOW + 10 * SECOND));
        assert_eq!(
            firings(&spec, 10),
            [NOW + 10 * SECOND, NOW + 11 * SECOND, NOW + 12 * SECOND]
        );
        // Off the cron's grid: fires at the due time, then on the grid after it.
        let spec = self::spec(JobInput {
            due_time: Some("PT2.5S".to_owned()),
            ..input("*/2 * * * * *")
        });
        assert_eq!(
            firings(&spec, 3),
            [NOW + 2_500, NOW + 4 * SECOND, NOW + 6 * SECOND]
        );
        // An RFC3339 due time, and one in the past (fires at once, as in Dapr).
        let spec = self::spec(JobInput {
            due_time: Some("2026-02-01T08:00:00Z".to_owned()),
            ..input("@daily")
        });
        assert_eq!(
            firings(&spec, 2)
                .iter()
                .map(|at| rfc3339(*at))
                .collect::<Vec<_>>(),
            ["2026-02-01T08:00:00Z", "2026-02-02T00:00:00Z"]
        );
        let spec = self::spec(JobInput {
            due_time: Some("2026-01-01T00:00:00Z".to_owned()),
            ..input("@every 1h")
        });
        assert_eq!(
            spec.first_fire_ms().map(rfc3339).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn due_time_alone_fires_once() {
        for repeats in [None, Some(1)] {
            let spec = spec(JobInput {
                name: "once".to_owned(),
                due_time: Some("30s".to_owned()),
                repeats,
                ..JobInput::default()
            });
            assert_eq!(spec.schedule, None);
            assert_eq!(firings(&spec, 10), [NOW + 30 * SECOND]);
            assert_eq!(spec.next_fire_after(NOW + 30 * SECOND, 1), None);
        }
        // A due time now: fires at once.
        let spec = spec(JobInput {
            due_time: Some("0s".to_owned()),
            ..JobInput {
                name: "now".to_owned(),
                ..JobInput::default()
            }
        });
        assert_eq!(spec.first_fire_ms(), Some(NOW));
    }

    #[test]
    fn ttl_cuts_the_sequence_inclusively() {
        let spec = spec(JobInput {
            ttl: Some("3s".to_owned()),
            ..input("@every 1s")
        });
        assert_eq!(spec.expires_at_ms, Some(NOW + 3 * SECOND));
        // A firing exactly at the expiry still happens.
        assert_eq!(
            firings(&spec, 100),
            [NOW + SECOND, NOW + 2 * SECOND, NOW + 3 * SECOND]
        );
        let spec = self::spec(JobInput {
            ttl: Some("2.5s".to_owned()),
            ..input("@every 1s")
        });
        assert_eq!(firings(&spec, 100), [NOW + SECOND, NOW + 2 * SECOND]);
        // With a due time, a relative ttl counts from it.
        let spec = self::spec(JobInput {
            due_time: Some("10s".to_owned()),
            ttl: Some("PT4S".to_owned()),
            ..input("*/2 * * * * *")
        });
        assert_eq!(spec.expires_at_ms, Some(NOW + 14 * SECOND));
        assert_eq!(firings(&spec, 100), [10, 12, 14].map(|s| NOW + s * SECOND));
        // Repeats and ttl together: whichever comes first ends it.
        let spec = self::spec(JobInput {
            ttl: Some("1h".to_owned()),
            repeats: Some(2),
            ..input("@every 1s")
        });
        assert_eq!(firings(&spec, 100).len(), 2);
        // An RFC3339 ttl.
        let spec = self::spec(JobInput {
            ttl: Some("2026-02-03T00:00:00Z".to_owned()),
            ..input("@daily")
        });
        assert_eq!(
            firings(&spec, 100)
                .into_iter()
                .map(rfc3339)
                .collect::<Vec<_>>(),
            [
                "2026-02-01T00:00:00Z",
                "2026-02-02T00:00:00Z",
                "2026-02-03T00:00:00Z"
            ]
        );
    }

    #[test]
    fn every_0s_needs_repeats_and_never_fires_early() {
        let spec = spec(JobInput {
            due_time: Some("0s".to_owned()),
            repeats: Some(3),
            ..input("@every 0s")
        });
        assert_eq!(firings(&spec, 100), [NOW, NOW, NOW]);
        let error = JobSpec::parse(input("@every 0s"), NOW).unwrap_err();
        assert_eq!(error.field(), "schedule");
        assert!(error.to_string().contains("needs repeats"), "{error}");
    }

    /// Runs `change` on a valid input and expects an error naming `field` and saying
    /// `part`.
    fn rejects(change: impl FnOnce(&mut JobInput), field: &str, part: &str) {
        let mut job = input("@every 1s");
        change(&mut job);
        let error = JobSpec::parse(job.clone(), NOW).expect_err(&format!("{job:?} is accepted"));
        let message = error.to_string();
        assert_eq!(error.field(), field, "{message}");
        assert!(message.contains(field), "{message:?} should name {field:?}");
        assert!(
            message.contains(part),
            "{message:?} should contain {part:?}"
        );
    }

    #[test]
    fn every_bad_input_names_its_field() {
        rejects(|job| job.name.clear(), "name", "must not be empty");
        rejects(
            |job| job.name = "a/b".to_owned(),
            "name",
            "'/' is not allowed",
        );
        rejects(
            |job| job.name = "x".repeat(MAX_JOB_NAME_BYTES + 1),
            "name",
            "longer than 1024 bytes",
        );
        rejects(
            |job| job.schedule = None,
            "schedule",
            "needs a schedule or a dueTime",
        );
        rejects(
            |job| job.schedule = Some(String::new()),
            "schedule",
            "needs a schedule or a dueTime",
        );
        rejects(
            |job| job.schedule = Some("* * * * *".to_owned()),
            "schedule",
            "expected 6 fields",
        );
        rejects(
            |job| job.schedule = Some("0 0 0 30 2 *".to_owned()),
            "schedule",
            "never fire",
        );
        rejects(
            |job| job.repeats = Some(-1),
            "repeats",
            "must not be negative",
        );
        rejects(|job| job.repeats = Some(0), "repeats", "must be at least 1");
        rejects(
            |job| job.repeats = Some(1 << 32),
            "repeats",
            "at most 4294967295",
        );
        rejects(
            |job| {
                job.schedule = None;
                job.due_time = Some("1s".to_owned());
                job.repeats = Some(2);
            },
            "repeats",
            "more repeats need a schedule",
        );
        rejects(
            |job| job.due_time = Some("soon".to_owned()),
            "dueTime",
            "invalid dueTime \"soon\"",
        );
        rejects(
            |job| job.due_time = Some("R2/PT1S".to_owned()),
            "dueTime",
            "only allowed in a period",
        );
        rejects(
            |job| job.ttl = Some("forever".to_owned()),
            "ttl",
            "invalid ttl \"forever\"",
        );
        rejects(
            |job| {
                job.due_time = Some("2026-02-01T00:00:00Z".to_owned());
                job.ttl = Some("2026-01-31T23:00:00Z".to_owned());
            },
            "ttl",
            "before the due time 2026-02-01T00:00:00Z",
        );
        rejects(
            |job| job.ttl = Some("2026-01-31T11:00:00Z".to_owned()),
            "ttl",
            "already expired",
        );
        rejects(
            |job| {
                job.schedule = Some("@daily".to_owned());
                job.ttl = Some("1m".to_owned());
            },
            "ttl",
            "before the first firing at 2026-02-01T00:00:00Z",
        );
        rejects(
            |job| {
                job.schedule = None;
                job.due_time = Some("1s".to_owned());
                job.ttl = Some("1m".to_owned());
            },
            "ttl",
            "a ttl needs a schedule",
        );
        rejects(
            |job| job.data = vec![0; MAX_JOB_DATA_BYTES + 1],
            "data",
            "1048577 bytes",
        );
        rejects(
            |job| {
                job.failure_policy = Some(FailurePolicyInput::Constant {
                    interval: Some("often".to_owned()),
                    max_retries: None,
                })
            },
            "failurePolicy",
            "interval \"often\"",
        );
        // The largest payload is accepted.
        let mut job = input("@every 1s");
        job.data = vec![7; MAX_JOB_DATA_BYTES];
        assert!(JobSpec::parse(job, NOW).is_ok());
    }

    #[test]
    fn job_names_follow_the_schedulers_rule() {
        // The Scheduler's own cases (go-etcd-cron validator_test.go), then some more.
        let accepted = [
            "fo.o",
            "valid",
            "foo||foo",
            "foo.bar||foo",
            "foo.BAR||foo",
            "foo.BAR_f-oo||foo",
            "start-4NYDFil-",
            "aABVCD||dapr-::123:123||perf-  workflowsapp.workflow||24b3fbad-0db5",
            "my job",
            "-a-",
            "UPPER",
            "0",
        ];
        for name in accepted {
            assert_eq!(validate_job_name(name), Ok(()), "{name:?}");
        }
        let long_part = "a".repeat(MAX_NAME_PART_BYTES);
        assert_eq!(validate_job_name(&long_part), Ok(()));
        // Left-out characters do not count towards a part's length.
        assert_eq!(validate_job_name(&format!("{long_part}-_: ")), Ok(()));
        let rejected = [
            ("", "must not be empty"),
            ("/", "'/' is not allowed"),
            ("/foo/", "'/' is not allowed"),
            ("foo/", "'/' is not allowed"),
            (".", "a '.' must stand between"),
            ("..", "a '.' must stand between"),
            ("./.", "'/' is not allowed"),
            ("fo...o", "a '.' must stand between"),
            (".foo", "a '.' must stand between"),
            ("foo.", "a '.' must stand between"),
            ("||", "empty part"),
            ("foo||", "empty part"),
            ("||foo", "empty part"),
            ("-", "empty part"),
            ("a|b", "'|' is not allowed"),
            ("a|||b", "'|' is not allowed"),
            ("caf\u{e9}", "'\u{e9}' is not allowed"),
            ("a\tb", "'\\t' is not allowed"),
            ("a?b", "'?' is not allowed"),
        ];
        for (name, part) in rejected {
            let error = validate_job_name(name).unwrap_err();
            assert_eq!(error.field(), "name");
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("invalid job name {name:?}: "))
                    && message.contains(part),
                "{name:?}: {message:?} should contain {part:?}"
            );
        }
        let error = validate_job_name(&format!("{long_part}a")).unwrap_err();
        assert!(error.to_string().contains("longer than 253"), "{error}");
    }

    #[test]
    fn failure_policies() {
        let spec = spec(input("@every 1s"));
        assert_eq!(
            spec.failure_policy,
            FailurePolicy::Constant {
                interval_ms: 1_000,
                max_retries: Some(3)
            }
        );
        // Three retries after the first attempt, then the firing is given up.
        let delays: Vec<_> = (1..=5)
            .map(|n| spec.failure_policy.retry_delay_ms(n))
            .collect();
        assert_eq!(delays, [Some(1_000), Some(1_000), Some(1_000), None, None]);
        let parse = |policy| {
            JobSpec::parse(
                JobInput {
                    failure_policy: Some(policy),
                    ..input("@every 1s")
                },
                NOW,
            )
            .unwrap()
            .failure_policy
        };
        let drop = parse(FailurePolicyInput::Drop);
        assert_eq!(drop, FailurePolicy::Drop);
        assert_eq!(drop.retry_delay_ms(1), None);
        let unlimited = parse(FailurePolicyInput::Constant {
            interval: Some("200ms".to_owned()),
            max_retries: None,
        });
        assert_eq!(
            unlimited,
            FailurePolicy::Constant {
                interval_ms: 200,
                max_retries: None
            }
        );
        assert_eq!(unlimited.retry_delay_ms(1_000_000), Some(200));
        // No interval: retry at once; zero retries: give up at once.
        let none = parse(FailurePolicyInput::Constant {
            interval: None,
            max_retries: Some(0),
        });
        assert_eq!(
            none,
            FailurePolicy::Constant {
                interval_ms: 0,
                max_retries: Some(0)
            }
        );
        assert_eq!(none.retry_delay_ms(1), None);
        // Protobuf JSON's form of a duration is a Go duration too.
        let proto = parse(FailurePolicyInput::Constant {
            interval: Some("1.5s".to_owned()),
            max_retries: Some(1),
        });
        assert_eq!(proto.retry_delay_ms(1), Some(1_500));
    }

    #[test]
    fn specs_round_trip_through_json_with_the_schedule_as_its_string() {
        let spec = spec(JobInput {
            name: "backup||nightly".to_owned(),
            due_time: Some("PT1H".to_owned()),
            repeats: Some(5),
            ttl: Some("P7D".to_owned()),
            data: b"{\"value\":\"Running spice\"}".to_vec(),
            overwrite: true,
            failure_policy: Some(FailurePolicyInput::Drop),
            ..input("0 30 9 * * MON-FRI")
        });
        let json = serde_json::to_string(&spec).unwrap();
        assert!(
            json.contains("\"schedule\":\"0 30 9 * * MON-FRI\""),
            "{json}"
        );
        let back: JobSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
        assert_eq!(firings(&back, 10), firings(&spec, 10));
        assert_eq!(firings(&back, 10).len(), 5);
        // A one-shot job, and every schedule form, survive too.
        let once = self::spec(JobInput {
            schedule: None,
            due_time: Some("1m".to_owned()),
            ..input("")
        });
        let back: JobSpec = serde_json::from_str(&serde_json::to_string(&once).unwrap()).unwrap();
        assert_eq!(back, once);
        for text in [
            "@every 1h30m",
            "@daily",
            "*/2 * * * * *",
            "CRON_TZ=UTC 0 0 9 * * *",
        ] {
            let schedule = JobSchedule::parse(text).unwrap();
            let json = serde_json::to_string(&schedule).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            let back: JobSchedule = serde_json::from_str(&json).unwrap();
            assert_eq!(back.next_after(NOW), schedule.next_after(NOW), "{text}");
        }
        // A stored schedule that no longer parses fails to load, naming itself.
        let error = serde_json::from_str::<JobSchedule>("\"@fortnightly\"").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("invalid schedule \"@fortnightly\""),
            "{error}"
        );
    }

    proptest::proptest! {
        /// Whatever the instant, the next firing is after it and no later than one
        /// period: never early, never skipping one.
        #[test]
        fn next_is_after_and_within_one_period(after in 0u64..4_000_000_000_000) {
            for (text, period) in [("*/2 * * * * *", 2 * SECOND), ("@hourly", HOUR), ("@every 750ms", 750)] {
                let schedule = JobSchedule::parse(text).unwrap();
                let next = schedule.next_after(after).unwrap();
                proptest::prop_assert!(next > after && next - after <= period, "{} {} {}", text, after, next);
            }
        }
    }
}
