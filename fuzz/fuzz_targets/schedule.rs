//! Feeds arbitrary UTF-8 to the schedule parsers of `rookery_core::schedule` (`parse_due`,
//! `parse_period`, `parse_ttl`, `parse_schedule`, `parse_go_duration_ms`) and to
//! `rookery_core::jobs::JobSchedule::parse`. The input is split on `\n` into a due time, a
//! period, a ttl and a job schedule (the whole input is also tried as each one).
//!
//! Checks: nothing panics; for a reminder schedule or a job schedule that parses, the
//! instants `next_after` gives never go backwards (and a job schedule's never precede the
//! instant asked from).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rookery_core::jobs::JobSchedule;
use rookery_core::schedule::{
    parse_due, parse_go_duration_ms, parse_period, parse_schedule, parse_ttl,
};

const NOW_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn check_reminder(due: &str, period: &str, ttl: &str) {
    let Ok(schedule) = parse_schedule(due, period, ttl, NOW_MS) else {
        return;
    };
    let mut at = schedule.due_at_ms;
    for count in 1..=64u32 {
        match schedule.next_after(at, count) {
            Some(next) => {
                assert!(next >= at, "{schedule:?}: {next} after {at}");
                if let Some(expires) = schedule.expires_at_ms {
                    assert!(next <= expires, "{schedule:?}: {next} past expiry");
                }
                at = next;
            }
            None => break,
        }
    }
}

fn check_job_schedule(value: &str) {
    let Ok(schedule) = JobSchedule::parse(value) else {
        return;
    };
    assert_eq!(schedule.as_str(), value);
    let mut at = NOW_MS;
    for _ in 0..16 {
        match schedule.next_after(at) {
            Some(next) => {
                assert!(next >= at, "{value:?}: {next} before {at}");
                if schedule.interval_ms() != Some(0) {
                    assert!(next > at, "{value:?}: {next} not after {at}");
                }
                at = next;
            }
            None => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The whole input as each field.
    let _ = parse_due(text, NOW_MS);
    let _ = parse_period(text);
    let _ = parse_ttl(text, NOW_MS, NOW_MS);
    let _ = parse_go_duration_ms(text);
    check_reminder(text, "", "");
    check_reminder("", text, "");
    check_reminder("", "1s", text);
    check_job_schedule(text);

    // Or the lines as the fields of one registration.
    let mut lines = text.split('\n');
    let due = lines.next().unwrap_or("");
    let period = lines.next().unwrap_or("");
    let ttl = lines.next().unwrap_or("");
    let job = lines.next().unwrap_or("");
    check_reminder(due, period, ttl);
    check_job_schedule(job);
});
