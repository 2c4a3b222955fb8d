//! Feeds `rookery_core::jobs::JobSpec::parse` a `JobInput` built from the bytes with
//! `arbitrary` (name, schedule, dueTime, repeats, ttl, data, failure policy), at a
//! registration instant also taken from the bytes.
//!
//! Checks: nothing panics; for a spec that parses, `first_fire_ms` is `Some`, and each
//! `next_fire_after` is never earlier than the firing before it (strictly later unless the
//! schedule is `@every` zero), never past the ttl, and stops after `repeats` firings.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rookery_core::jobs::{FailurePolicyInput, JobInput, JobSpec};

#[derive(Arbitrary, Debug)]
enum Policy {
    Drop,
    Constant {
        interval: Option<String>,
        max_retries: Option<u32>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    name: String,
    schedule: Option<String>,
    due_time: Option<String>,
    repeats: Option<i64>,
    ttl: Option<String>,
    data: Vec<u8>,
    overwrite: bool,
    failure_policy: Option<Policy>,
    /// Offset of the registration instant from 2026-01-01, in ms.
    now_offset_ms: u32,
}

const BASE_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fuzz_target!(|input: Input| {
    let now_ms = BASE_MS + u64::from(input.now_offset_ms);
    let job = JobInput {
        name: input.name,
        schedule: input.schedule,
        due_time: input.due_time,
        repeats: input.repeats,
        ttl: input.ttl,
        data: input.data,
        data_type_url: String::new(),
        overwrite: input.overwrite,
        failure_policy: input.failure_policy.map(|p| match p {
            Policy::Drop => FailurePolicyInput::Drop,
            Policy::Constant {
                interval,
                max_retries,
            } => FailurePolicyInput::Constant {
                interval,
                max_retries,
            },
        }),
    };
    let Ok(spec) = JobSpec::parse(job, now_ms) else {
        return;
    };
    let first = spec.first_fire_ms();
    if spec.repeats != Some(0) {
        assert!(first.is_some(), "accepted but never fires: {spec:?}");
    }
    let Some(mut last) = first else { return };
    assert_eq!(spec.next_fire_after(0, 0), Some(last));
    let zero_interval = spec
        .schedule
        .as_ref()
        .is_some_and(|s| s.interval_ms() == Some(0));
    for fired in 1..=32u32 {
        if let Some(expires) = spec.expires_at_ms {
            assert!(last <= expires, "{last} past the ttl {expires}: {spec:?}");
        }
        match spec.next_fire_after(last, fired) {
            Some(next) => {
                assert!(next >= last, "{next} before {last}: {spec:?}");
                if !zero_interval {
                    assert!(next > last, "{next} not after {last}: {spec:?}");
                }
                if let Some(total) = spec.repeats {
                    assert!(fired < total, "fires past {total} repeats: {spec:?}");
                }
                last = next;
            }
            None => break,
        }
    }
});
