//! Resiliency policies, as Dapr's `Resiliency` resource states them: per-attempt timeouts,
//! retries with back-off and circuit breakers, for calls to actors (by type), to the app
//! (the app channel) and to the state store component.
//!
//! [`spec`] reads and checks the resource into plain data ([`ResiliencyConfig`]);
//! [`Resiliency`] holds the live policies of one host: the breakers' state and the metrics.
//! Where each applies:
//! - actor targets: by the router of the calling host, around each attempt of a call
//!   (local or forwarded); breakers per type, per id or both (`circuitBreakerScope`);
//! - the app target (`targets.apps.<app id>`): by the owner's activation, around each turn
//!   the app runs;
//! - component targets: around each operation of the state store ([`store`]).
//!
//! What is retried is in [`retry`]: never a call that may have run. Without a resource,
//! actor calls keep the built-in retries ([`builtin_actor_retries`]) and nothing else
//! applies.

pub mod breaker;
pub mod retry;
pub mod spec;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::CallError;
use crate::metrics::{BreakerLabels, HostMetrics, PolicyLabels};
use crate::state::StateError;
use breaker::{BreakerCache, Settings, State, Ticket};
use retry::{Backoff, RetrySpec};
use spec::{BreakerScope, BreakerSpec};
pub use spec::{ResiliencyConfig, ResiliencyError, TargetSpec};

/// First and last pause of the built-in retries of actor calls.
pub const BUILT_IN_RETRY_MIN_MS: u64 = 5;
pub const BUILT_IN_RETRY_MAX_MS: u64 = 500;

/// The retries of actor calls when no policy names one: calls that surely did not run
/// because the owner was unreachable or not ready (`UNAVAILABLE`; not an overloaded owner,
/// whose callers should hear of it) are sent again, pausing 5 ms doubling to 500 ms, until
/// the caller's deadline. Stronger than daprd's (1 s, 3 times): a dead owner is
/// replaced within its placement lease, and calls ride through that. A retry policy named
/// `DaprBuiltInActorRetries` replaces it.
pub fn builtin_actor_retries() -> RetrySpec {
    RetrySpec {
        name: "built-in".into(),
        backoff: Backoff::Doubling {
            min_ms: BUILT_IN_RETRY_MIN_MS,
            max_ms: BUILT_IN_RETRY_MAX_MS,
        },
        max_retries: None,
        http_codes: None,
        grpc_codes: Some(retry::CodeSet::parse("14", 0..=16).expect("a valid code list")),
    }
}

/// How a failure of some operation meets the policies.
pub trait Failure: Sized {
    /// Whether `retry` sends the operation again after this failure.
    fn retried_by(&self, retry: &RetrySpec) -> bool;
    /// Whether circuit breakers count this failure.
    fn is_breaker_failure(&self) -> bool;
    fn timed_out(message: String) -> Self;
    fn circuit_open(message: String) -> Self;
}

impl Failure for CallError {
    fn retried_by(&self, retry: &RetrySpec) -> bool {
        retry.retries(self)
    }
    fn is_breaker_failure(&self) -> bool {
        self.counts_as_failure()
    }
    fn timed_out(message: String) -> Self {
        CallError::DeadlineExceeded(message)
    }
    fn circuit_open(message: String) -> Self {
        CallError::CircuitOpen(message)
    }
}

/// Store operations are idempotent under the claim's epoch (a transaction applied twice
/// leaves what one leaves; a repeated claim supersedes the first), so every failure to
/// reach the store may be retried, timeouts included.
impl Failure for StateError {
    fn retried_by(&self, retry: &RetrySpec) -> bool {
        matches!(self, StateError::Unavailable(_))
            && retry.matches(&CallError::StoreUnavailable(self.to_string()))
    }
    fn is_breaker_failure(&self) -> bool {
        matches!(self, StateError::Unavailable(_))
    }
    fn timed_out(message: String) -> Self {
        StateError::Unavailable(message)
    }
    fn circuit_open(message: String) -> Self {
        StateError::Unavailable(message)
    }
}

/// The circuit breakers of one target.
struct Breakers {
    spec: BreakerSpec,
    settings: Settings,
    scope: BreakerScope,
    by_type: Mutex<BreakerCache>,
    by_id: Mutex<BreakerCache>,
}

/// Which breakers a call passes: its type's, its id's, or both.
#[derive(Clone, Copy)]
pub struct BreakerKey<'a> {
    pub type_key: &'a str,
    pub id_key: &'a str,
}

impl BreakerKey<'static> {
    /// The one breaker of a target that is not per actor (the app, a component).
    pub const WHOLE: BreakerKey<'static> = BreakerKey {
        type_key: "",
        id_key: "",
    };
}

/// One breaker's admission of a call.
struct Pass {
    by_id: bool,
    key: String,
    ticket: Ticket,
}

/// The policies of one target, live.
pub struct TargetPolicy {
    labels: PolicyLabels,
    timeout: Option<Duration>,
    retry: RetrySpec,
    breakers: Option<Breakers>,
    metrics: Arc<HostMetrics>,
}

/// A call admitted by a target's breakers; its outcome must be recorded.
pub struct Admission<'a> {
    /// Borrowed: a count taken on the policy per call would be a write every core shares.
    policy: &'a TargetPolicy,
    passes: Vec<Pass>,
}

impl Admission<'_> {
    /// Takes the attempt's outcome into the breakers that admitted it.
    pub fn record<T, E: Failure>(self, result: &Result<T, E>) {
        let success = !matches!(result, Err(e) if e.is_breaker_failure());
        let Some(breakers) = &self.policy.breakers else {
            return;
        };
        let now = Instant::now();
        for pass in &self.passes {
            let cache = if pass.by_id {
                &breakers.by_id
            } else {
                &breakers.by_type
            };
            let mut cache = cache.lock().expect("breaker lock");
            let change = cache
                .existing(&pass.key)
                .and_then(|b| b.record(&breakers.settings, pass.ticket, success, now));
            drop(cache);
            self.policy.changed(change, &pass.key);
        }
    }

    /// The call was redirected before it reached the target (the actor moved): nothing is
    /// recorded, and the admissions are given back.
    pub fn release(self) {
        let Some(breakers) = &self.policy.breakers else {
            return;
        };
        for pass in &self.passes {
            let cache = if pass.by_id {
                &breakers.by_id
            } else {
                &breakers.by_type
            };
            if let Some(breaker) = cache.lock().expect("breaker lock").existing(&pass.key) {
                breaker.release(pass.ticket);
            }
        }
    }
}

impl TargetPolicy {
    fn new(
        target: String,
        spec: Option<&TargetSpec>,
        retry: RetrySpec,
        metrics: Arc<HostMetrics>,
    ) -> TargetPolicy {
        let breakers = spec
            .and_then(|s| s.breaker.clone().map(|b| (b, s)))
            .map(|(b, s)| {
                let settings = Settings {
                    max_requests: b.max_requests,
                    interval: (b.interval_ms > 0).then(|| Duration::from_millis(b.interval_ms)),
                    timeout: Duration::from_millis(b.timeout_ms),
                    trip: b.trip.clone(),
                };
                Breakers {
                    spec: b,
                    settings,
                    scope: s.scope,
                    by_type: Mutex::new(BreakerCache::new(s.breaker_cache_size)),
                    by_id: Mutex::new(BreakerCache::new(s.breaker_cache_size)),
                }
            });
        TargetPolicy {
            labels: PolicyLabels { target },
            timeout: spec.and_then(|s| s.timeout_ms).map(Duration::from_millis),
            retry,
            breakers,
            metrics,
        }
    }

    /// The target, as metrics name it (`actor:Counter`, `app:orders`, `component:statestore`).
    pub fn target(&self) -> &str {
        &self.labels.target
    }

    /// The bound of each attempt, if a timeout policy applies.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The end of an attempt started now: the policy's timeout, within `deadline`.
    pub fn attempt_deadline(&self, deadline: Instant) -> Instant {
        match self.timeout {
            Some(timeout) => deadline.min(Instant::now() + timeout),
            None => deadline,
        }
    }

    /// The error of an attempt cut off by the timeout policy (counted).
    pub fn timed_out<E: Failure>(&self) -> E {
        self.metrics
            .resiliency_timeouts_total
            .get_or_create(&self.labels)
            .inc();
        E::timed_out(format!(
            "{} did not answer within the resiliency timeout of {} ms",
            self.labels.target,
            self.timeout.unwrap_or_default().as_millis()
        ))
    }

    /// The retries of one call: the pause before the next attempt after `error`, or `None`
    /// to give up.
    pub fn retries(&self) -> Retries<'_> {
        Retries {
            policy: self,
            schedule: None,
        }
    }

    /// Lets a call through this target's breakers, or refuses it while one is open.
    pub fn admit<E: Failure>(&self, key: BreakerKey<'_>) -> Result<Admission<'_>, E> {
        let mut passes = Vec::new();
        let Some(breakers) = &self.breakers else {
            return Ok(Admission {
                policy: self,
                passes,
            });
        };
        let now = Instant::now();
        let keys: &[(bool, &str)] = match breakers.scope {
            BreakerScope::Type => &[(false, key.type_key)],
            BreakerScope::Id => &[(true, key.id_key)],
            BreakerScope::Both => &[(false, key.type_key), (true, key.id_key)],
        };
        for &(by_id, breaker_key) in keys {
            let cache = if by_id {
                &breakers.by_id
            } else {
                &breakers.by_type
            };
            let mut cache = cache.lock().expect("breaker lock");
            let (admitted, change) = cache
                .get(breaker_key, &breakers.settings, now)
                .admit(&breakers.settings, now);
            drop(cache);
            self.changed(change, breaker_key);
            match admitted {
                Ok(ticket) => passes.push(Pass {
                    by_id,
                    key: breaker_key.to_owned(),
                    ticket,
                }),
                Err(state) => {
                    // Those already passed are released: their call is not made.
                    Admission {
                        policy: self,
                        passes,
                    }
                    .release();
                    self.metrics
                        .resiliency_breaker_rejections_total
                        .get_or_create(&self.labels)
                        .inc();
                    let which = if breaker_key.is_empty() {
                        String::new()
                    } else {
                        format!(" of {breaker_key}")
                    };
                    return Err(E::circuit_open(format!(
                        "circuit breaker {:?}{which} for {} is {}: the call was not made",
                        breakers.spec.name,
                        self.labels.target,
                        state.name()
                    )));
                }
            }
        }
        Ok(Admission {
            policy: self,
            passes,
        })
    }

    fn changed(&self, change: Option<State>, key: &str) {
        let (Some(state), Some(breakers)) = (change, &self.breakers) else {
            return;
        };
        tracing::info!(target = %self.labels.target, breaker = key, state = state.name(), "circuit breaker changed state");
        self.metrics
            .resiliency_breaker_transitions_total
            .get_or_create(&BreakerLabels {
                target: self.labels.target.clone(),
                state: state.name(),
            })
            .inc();
        let open = breakers.by_type.lock().expect("breaker lock").open_count()
            + breakers.by_id.lock().expect("breaker lock").open_count();
        self.metrics
            .resiliency_breakers_open
            .get_or_create(&self.labels)
            .set(open as i64);
    }

    /// Runs `attempt` under this target's policies: each attempt admitted by the breakers
    /// and bounded by the timeout (and by `deadline`), retried as the retry policy says.
    /// `attempt` gets the instant its attempt must end by.
    pub async fn run<T, E, F, Fut>(
        self: &Arc<Self>,
        key: BreakerKey<'_>,
        deadline: Option<Instant>,
        mut attempt: F,
    ) -> Result<T, E>
    where
        E: Failure,
        F: FnMut(Option<Instant>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut retries = self.retries();
        loop {
            let admission = self.admit::<E>(key)?;
            let end = match (self.timeout, deadline) {
                (Some(timeout), Some(deadline)) => Some(deadline.min(Instant::now() + timeout)),
                (Some(timeout), None) => Some(Instant::now() + timeout),
                (None, deadline) => deadline,
            };
            let result = match end {
                Some(end) => match tokio::time::timeout_at(end, attempt(Some(end))).await {
                    Ok(result) => result,
                    Err(_) if self.timeout.is_some() && deadline.is_none_or(|d| end < d) => {
                        Err(self.timed_out())
                    }
                    Err(_) => Err(E::timed_out(format!(
                        "{} did not answer by the caller's deadline",
                        self.labels.target
                    ))),
                },
                None => attempt(None).await,
            };
            admission.record(&result);
            match result {
                Err(error) => match retries.pause_after(&error, deadline) {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => return Err(error),
                },
                ok => return ok,
            }
        }
    }
}

/// The retries left to one call.
pub struct Retries<'a> {
    policy: &'a TargetPolicy,
    /// Made at the first error the policy retries: most calls never need one.
    schedule: Option<Box<dyn Iterator<Item = Duration> + Send>>,
}

impl Retries<'_> {
    /// The pause before sending the call again after `error`, if the policy retries it and
    /// the retry can start before `deadline`; counts the retry.
    pub fn pause_after<E: Failure>(
        &mut self,
        error: &E,
        deadline: Option<Instant>,
    ) -> Option<Duration> {
        if !error.retried_by(&self.policy.retry) {
            return None;
        }
        let pause = self
            .schedule
            .get_or_insert_with(|| self.policy.retry.schedule())
            .next()?;
        if deadline.is_some_and(|d| Instant::now() + pause >= d) {
            return None;
        }
        self.policy
            .metrics
            .resiliency_retries_total
            .get_or_create(&self.policy.labels)
            .inc();
        Some(pause)
    }
}

/// The live policies of one host.
pub struct Resiliency {
    actors: HashMap<String, Arc<TargetPolicy>>,
    /// Types no target names: the `Default…` policies (breakers per type) or the built-in
    /// retries alone.
    other_actors: Arc<TargetPolicy>,
    app: Option<Arc<TargetPolicy>>,
    config: ResiliencyConfig,
    metrics: Arc<HostMetrics>,
}

impl Resiliency {
    pub fn new(config: &ResiliencyConfig, app_id: &str, metrics: Arc<HostMetrics>) -> Resiliency {
        metrics
            .resiliency_resources_loaded
            .set(config.resources.len() as i64);
        let built_in = config
            .built_in_actor_retries
            .clone()
            .unwrap_or_else(builtin_actor_retries);
        let actor_policy = |target: String, spec: Option<&TargetSpec>| {
            let retry = spec
                .and_then(|s| s.retry.clone())
                .unwrap_or_else(|| built_in.clone());
            Arc::new(TargetPolicy::new(target, spec, retry, metrics.clone()))
        };
        let actors = config
            .actors
            .iter()
            .map(|(t, spec)| (t.clone(), actor_policy(format!("actor:{t}"), Some(spec))))
            .collect();
        let other_actors = actor_policy("actor:*".into(), config.default_actor.as_ref());
        let app = config.app.as_ref().map(|spec| {
            Arc::new(TargetPolicy::new(
                format!("app:{app_id}"),
                Some(spec),
                spec.retry.clone().unwrap_or_else(no_retries),
                metrics.clone(),
            ))
        });
        Resiliency {
            actors,
            other_actors,
            app,
            config: config.clone(),
            metrics,
        }
    }

    /// No resource: the built-in retries of actor calls alone.
    pub fn built_in(metrics: Arc<HostMetrics>) -> Resiliency {
        Resiliency::new(&ResiliencyConfig::default(), "", metrics)
    }

    /// The policies of calls to actors of `actor_type`.
    pub fn actor(&self, actor_type: &str) -> &Arc<TargetPolicy> {
        self.actors.get(actor_type).unwrap_or(&self.other_actors)
    }

    /// The policies of the turns the app runs, if any apply.
    pub fn app(&self) -> Option<&Arc<TargetPolicy>> {
        self.app.as_ref()
    }

    /// The policies of the state store component `name`, if any apply.
    pub fn state_component(&self, name: &str) -> Option<Arc<TargetPolicy>> {
        let spec = self
            .config
            .components
            .get(name)
            .or(self.config.default_state_component.as_ref())?;
        Some(Arc::new(TargetPolicy::new(
            format!("component:{name}"),
            Some(spec),
            spec.retry.clone().unwrap_or_else(no_retries),
            self.metrics.clone(),
        )))
    }
}

/// A retry policy that never retries.
fn no_retries() -> RetrySpec {
    RetrySpec {
        name: "none".into(),
        backoff: Backoff::Constant { duration_ms: 0 },
        max_retries: Some(0),
        http_codes: None,
        grpc_codes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(spec: TargetSpec) -> Arc<TargetPolicy> {
        let retry = spec.retry.clone().unwrap_or_else(no_retries);
        Arc::new(TargetPolicy::new(
            "actor:T".into(),
            Some(&spec),
            retry,
            Arc::new(HostMetrics::default()),
        ))
    }

    fn target(retry: Option<RetrySpec>, timeout_ms: Option<u64>) -> TargetSpec {
        TargetSpec {
            timeout_ms,
            retry,
            breaker: None,
            scope: BreakerScope::Id,
            breaker_cache_size: 10,
        }
    }

    fn constant(duration_ms: u64, max_retries: u32) -> RetrySpec {
        RetrySpec {
            name: "c".into(),
            backoff: Backoff::Constant { duration_ms },
            max_retries: Some(max_retries),
            http_codes: None,
            grpc_codes: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_follow_the_policy_and_stop_at_calls_that_may_have_run() {
        let policy = policy(target(Some(constant(100, 3)), None));
        let attempts = AtomicU32::new(0);
        let started = Instant::now();
        let result: Result<(), CallError> = policy
            .run(BreakerKey::WHOLE, None, |_| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async { Err(CallError::Unavailable("refused".into())) }
            })
            .await;
        assert!(matches!(result, Err(CallError::Unavailable(_))));
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        let attempts = AtomicU32::new(0);
        let _: Result<(), CallError> = policy
            .run(BreakerKey::WHOLE, None, |_| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async { Err(CallError::OwnerLost("broke mid-call".into())) }
            })
            .await;
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "never run twice");
    }

    #[test]
    fn the_built_in_retries_ride_through_unreachable_owners_only() {
        let built_in = builtin_actor_retries();
        assert!(built_in.retries(&CallError::Unavailable("refused".into())));
        assert!(!built_in.retries(&CallError::Overloaded("mailbox full".into())));
        assert!(!built_in.retries(&CallError::OwnerLost("died mid-call".into())));
        assert_eq!(
            built_in.schedule().take(8).last(),
            Some(Duration::from_millis(500))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_cuts_each_attempt_at_its_bound() {
        let policy = policy(target(None, Some(250)));
        let started = Instant::now();
        let result: Result<(), CallError> = policy
            .run(BreakerKey::WHOLE, None, |_| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            })
            .await;
        assert!(
            matches!(result, Err(CallError::DeadlineExceeded(_))),
            "{result:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_fails_fast_without_calling() {
        let spec = TargetSpec {
            breaker: Some(BreakerSpec {
                name: "cb".into(),
                max_requests: 1,
                interval_ms: 0,
                timeout_ms: 1_000,
                trip: breaker::TripCondition::parse("consecutiveFailures > 1").unwrap(),
            }),
            ..target(None, None)
        };
        let policy = policy(spec);
        let calls = AtomicU32::new(0);
        let key = BreakerKey {
            type_key: "T",
            id_key: "a",
        };
        for _ in 0..3 {
            let _: Result<(), CallError> = policy
                .run(key, None, |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(CallError::Application("boom".into())) }
                })
                .await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the third was refused");
        let other = BreakerKey {
            type_key: "T",
            id_key: "b",
        };
        let ok: Result<(), CallError> = policy.run(other, None, |_| async { Ok(()) }).await;
        assert!(ok.is_ok(), "breakers are per id");
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let ok: Result<(), CallError> = policy.run(key, None, |_| async { Ok(()) }).await;
        assert!(
            ok.is_ok(),
            "half-open lets one through, and it closes the breaker"
        );
        let ok: Result<(), CallError> = policy.run(key, None, |_| async { Ok(()) }).await;
        assert!(ok.is_ok());
    }
}
