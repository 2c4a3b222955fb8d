//! Retry policies: their back-off schedules (from `backon`) and which failures they retry.
//!
//! `constant` waits `duration` between attempts; `exponential` starts at 500 ms and grows by
//! 1.5 each time up to `maxInterval`, each pause with up to as much again of random jitter,
//! never above `maxInterval` (daprd's parameters). `maxRetries` bounds the attempts after the
//! first (-1, or unset: unbounded, within the caller's deadline).
//!
//! Whatever the policy, only failures of calls that surely did not run are retried
//! ([`CallError::may_have_run`] false, [`CallError::is_transient`] true): a timeout, an app
//! error or an owner lost mid-call reach the caller, so a retry never runs a call twice.
//! `matching` narrows the retried failures further to the listed gRPC codes or HTTP statuses.

use std::ops::RangeInclusive;
use std::time::Duration;

use backon::{BackoffBuilder, ConstantBuilder, ExponentialBuilder};

use crate::error::CallError;

/// First pause of the exponential policy (daprd's).
pub const EXPONENTIAL_INITIAL_INTERVAL_MS: u64 = 500;
/// Growth of the exponential policy's pauses (daprd's).
pub const EXPONENTIAL_MULTIPLIER: f32 = 1.5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backoff {
    Constant {
        duration_ms: u64,
    },
    Exponential {
        max_interval_ms: u64,
    },
    /// Doubling from `min_ms` to `max_ms`, without jitter (the built-in retries of actor
    /// calls).
    Doubling {
        min_ms: u64,
        max_ms: u64,
    },
}

/// A set of status codes, from `"429,500-599"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeSet(Vec<RangeInclusive<u32>>);

impl CodeSet {
    /// Parses a comma-separated list of codes and `start-end` ranges within `valid`.
    pub fn parse(text: &str, valid: RangeInclusive<u32>) -> Result<CodeSet, String> {
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (start, end) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let code = |s: &str| {
                s.parse::<u32>()
                    .ok()
                    .filter(|c| valid.contains(c))
                    .ok_or_else(|| {
                        format!(
                            "{s:?} in {text:?} is not a code from {} to {}",
                            valid.start(),
                            valid.end()
                        )
                    })
            };
            let (start, end) = (code(start)?, code(end)?);
            if start > end {
                return Err(format!("range {part:?} in {text:?} runs backwards"));
            }
            ranges.push(start..=end);
        }
        Ok(CodeSet(ranges))
    }

    pub fn contains(&self, code: u32) -> bool {
        self.0.iter().any(|r| r.contains(&code))
    }
}

/// A retry policy, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySpec {
    /// The policy's name, for metrics and logs.
    pub name: String,
    pub backoff: Backoff,
    /// Attempts after the first; `None`: unbounded.
    pub max_retries: Option<u32>,
    pub http_codes: Option<CodeSet>,
    pub grpc_codes: Option<CodeSet>,
}

impl RetrySpec {
    /// Whether this policy retries a call that failed so.
    pub fn retries(&self, error: &CallError) -> bool {
        !error.may_have_run() && error.is_transient() && self.matches(error)
    }

    /// Whether `error` is among the codes `matching` lists (every error, if none).
    pub fn matches(&self, error: &CallError) -> bool {
        match (&self.grpc_codes, &self.http_codes) {
            (None, None) => true,
            (grpc, http) => {
                grpc.as_ref()
                    .is_some_and(|c| c.contains(error.grpc_code() as u32))
                    || http
                        .as_ref()
                        .is_some_and(|c| c.contains(u32::from(error.http_status())))
            }
        }
    }

    /// The pauses before each retry of one call, in order.
    pub fn schedule(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
        let max_times = self.max_retries.map(|n| n as usize).unwrap_or(usize::MAX);
        match self.backoff {
            Backoff::Constant { duration_ms } => Box::new(
                ConstantBuilder::new()
                    .with_delay(Duration::from_millis(duration_ms))
                    .with_max_times(max_times)
                    .build(),
            ),
            Backoff::Exponential { max_interval_ms } => {
                let max = Duration::from_millis(max_interval_ms);
                Box::new(
                    ExponentialBuilder::new()
                        .with_min_delay(
                            Duration::from_millis(EXPONENTIAL_INITIAL_INTERVAL_MS).min(max),
                        )
                        .with_factor(EXPONENTIAL_MULTIPLIER)
                        .with_max_delay(max)
                        .with_max_times(max_times)
                        .with_jitter()
                        .build()
                        .map(move |pause| pause.min(max)),
                )
            }
            Backoff::Doubling { min_ms, max_ms } => Box::new(
                ExponentialBuilder::new()
                    .with_min_delay(Duration::from_millis(min_ms))
                    .with_factor(2.0)
                    .with_max_delay(Duration::from_millis(max_ms))
                    .with_max_times(max_times)
                    .build(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(backoff: Backoff, max_retries: Option<u32>) -> RetrySpec {
        RetrySpec {
            name: "r".into(),
            backoff,
            max_retries,
            http_codes: None,
            grpc_codes: None,
        }
    }

    #[test]
    fn constant_pauses_are_exact_and_counted() {
        let pauses: Vec<_> = spec(Backoff::Constant { duration_ms: 200 }, Some(3))
            .schedule()
            .collect();
        assert_eq!(pauses, vec![Duration::from_millis(200); 3]);
    }

    #[test]
    fn exponential_pauses_grow_within_their_jitter_and_cap() {
        let pauses: Vec<_> = spec(
            Backoff::Exponential {
                max_interval_ms: 2_000,
            },
            Some(8),
        )
        .schedule()
        .collect();
        assert_eq!(pauses.len(), 8);
        let mut base = 500.0f64;
        for pause in pauses {
            let ms = pause.as_secs_f64() * 1000.0;
            assert!(
                ms >= base.min(2_000.0) - 1.0 && ms <= (2.0 * base).min(2_000.0) + 1.0,
                "{ms} vs {base}"
            );
            base *= 1.5;
        }
        assert!(
            spec(
                Backoff::Exponential {
                    max_interval_ms: 10
                },
                None
            )
            .schedule()
            .take(1000)
            .count()
                == 1000
        );
    }

    #[test]
    fn only_calls_that_surely_did_not_run_are_retried() {
        let any = spec(Backoff::Constant { duration_ms: 1 }, None);
        assert!(any.retries(&CallError::Unavailable("refused".into())));
        assert!(any.retries(&CallError::Overloaded("full".into())));
        for ran in [
            CallError::Application("boom".into()),
            CallError::DeadlineExceeded("slow".into()),
            CallError::OwnerLost("died".into()),
            CallError::AppDisconnected("gone".into()),
            CallError::InvalidArgument("bad".into()),
            CallError::CircuitOpen("open".into()),
        ] {
            assert!(!any.retries(&ran), "{ran:?}");
        }
        let only_429 = RetrySpec {
            http_codes: Some(CodeSet::parse("429", 100..=599).unwrap()),
            ..any.clone()
        };
        assert!(only_429.retries(&CallError::Overloaded("full".into())));
        assert!(!only_429.retries(&CallError::Unavailable("refused".into())));
        let only_unavailable = RetrySpec {
            grpc_codes: Some(CodeSet::parse("14", 0..=16).unwrap()),
            ..any
        };
        assert!(only_unavailable.retries(&CallError::Unavailable("refused".into())));
        assert!(!only_unavailable.retries(&CallError::Overloaded("full".into())));
    }

    #[test]
    fn code_sets_parse_lists_and_ranges() {
        let set = CodeSet::parse("429, 500-503", 100..=599).unwrap();
        assert!(set.contains(429) && set.contains(501) && !set.contains(504));
        assert!(CodeSet::parse("600", 100..=599).is_err());
        assert!(CodeSet::parse("503-500", 100..=599).is_err());
        assert!(CodeSet::parse("abc", 0..=16).is_err());
    }
}
