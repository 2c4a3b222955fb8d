//! Dapr's `Resiliency` resource as written in `--resources-path`, checked and resolved into
//! [`ResiliencyConfig`]: plain data, one resolved [`TargetSpec`] per target.
//!
//! ```yaml
//! apiVersion: dapr.io/v1alpha1
//! kind: Resiliency
//! metadata: {name: myresiliency}
//! scopes: [counter-app]            # optional: the app ids it applies to
//! spec:
//!   policies:
//!     timeouts: {general: 5s}
//!     retries:
//!       important: {policy: constant, duration: 1s, maxRetries: 3, matching: {gRPCStatusCodes: "14"}}
//!     circuitBreakers:
//!       simpleCB: {maxRequests: 1, interval: 8s, timeout: 45s, trip: consecutiveFailures > 8}
//!   targets:
//!     actors:
//!       Counter: {timeout: general, retry: important, circuitBreaker: simpleCB,
//!                 circuitBreakerScope: both, circuitBreakerCacheSize: 5000}
//!     apps:
//!       counter-app: {timeout: general, circuitBreaker: simpleCB}
//!     components:
//!       statestore: {outbound: {timeout: general, retry: important}}
//! ```
//!
//! Unknown fields, bad durations, unknown policy names and malformed trip expressions are
//! errors at start, naming the file and the field. Policies named by daprd's reserved
//! keywords apply where a target names none: `DefaultActorRetryPolicy`, then
//! `DefaultRetryPolicy` (and likewise for timeouts and circuit breakers, for `App`,
//! `Component`, `ComponentOutbound` and `StatestoreComponentOutbound`);
//! `DaprBuiltInActorRetries` replaces the built-in retries of actor calls.

use std::collections::BTreeMap;
use std::path::Path;

use rookery_core::schedule::parse_go_duration_ms;
use serde::Deserialize;

use super::breaker::TripCondition;
use super::retry::{Backoff, CodeSet, RetrySpec};
use crate::resources::ResourceDocument;

/// Breakers kept per actor id when a target sets no `circuitBreakerCacheSize` (daprd's).
pub const DEFAULT_BREAKER_CACHE_SIZE: usize = 5_000;
/// The retry policy name that replaces the built-in retries of actor calls.
pub const BUILT_IN_ACTOR_RETRIES: &str = "DaprBuiltInActorRetries";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("resiliency: {0}")]
pub struct ResiliencyError(pub String);

/// A circuit breaker's settings (gobreaker's, as daprd's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerSpec {
    pub name: String,
    /// Calls let through while half-open; that many successes close the breaker.
    pub max_requests: u32,
    /// How often a closed breaker clears its counts; 0: never.
    pub interval_ms: u64,
    /// How long an open breaker stays open before it half-opens.
    pub timeout_ms: u64,
    pub trip: TripCondition,
}

/// What a target's circuit breakers are keyed by (`circuitBreakerScope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerScope {
    /// One breaker per actor id.
    Id,
    /// One breaker for the whole type.
    Type,
    /// Both: a call passes only if neither is open.
    Both,
}

/// The policies of one target, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSpec {
    /// Bound of each attempt.
    pub timeout_ms: Option<u64>,
    pub retry: Option<RetrySpec>,
    pub breaker: Option<BreakerSpec>,
    pub scope: BreakerScope,
    pub breaker_cache_size: usize,
}

impl TargetSpec {
    fn is_empty(&self) -> bool {
        self.timeout_ms.is_none() && self.retry.is_none() && self.breaker.is_none()
    }
}

/// Every Resiliency resource that applies to this app, resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResiliencyConfig {
    /// `metadata.name` of each resource read.
    pub resources: Vec<String>,
    pub actors: BTreeMap<String, TargetSpec>,
    /// The `Default…` policies of actor types no target names.
    pub default_actor: Option<TargetSpec>,
    /// `DaprBuiltInActorRetries`, if set.
    pub built_in_actor_retries: Option<RetrySpec>,
    /// The app channel: `targets.apps.<this app id>`, else the `DefaultApp…` policies.
    pub app: Option<TargetSpec>,
    /// Outbound state store operations by component name.
    pub components: BTreeMap<String, TargetSpec>,
    /// The `Default…Component…` policies of state components no target names.
    pub default_state_component: Option<TargetSpec>,
}

// ---- the resource as written ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    scopes: Vec<String>,
    spec: Spec,
}

#[derive(Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    policies: Policies,
    #[serde(default)]
    targets: Targets,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Policies {
    #[serde(default)]
    timeouts: BTreeMap<String, String>,
    #[serde(default)]
    retries: BTreeMap<String, RetryDoc>,
    #[serde(default)]
    circuit_breakers: BTreeMap<String, BreakerDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetryDoc {
    policy: String,
    duration: Option<String>,
    max_interval: Option<String>,
    max_retries: Option<i64>,
    matching: Option<MatchingDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchingDoc {
    #[serde(rename = "httpStatusCodes")]
    http_status_codes: Option<Codes>,
    #[serde(rename = "gRPCStatusCodes")]
    grpc_status_codes: Option<Codes>,
}

/// A code list as YAML may type it: `"429,500-599"` or a bare `14`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Codes {
    Text(String),
    Number(u64),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BreakerDoc {
    max_requests: Option<u32>,
    interval: Option<String>,
    timeout: Option<String>,
    trip: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Targets {
    #[serde(default)]
    apps: BTreeMap<String, NamesDoc>,
    #[serde(default)]
    actors: BTreeMap<String, ActorNamesDoc>,
    #[serde(default)]
    components: BTreeMap<String, ComponentNamesDoc>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NamesDoc {
    timeout: Option<String>,
    retry: Option<String>,
    circuit_breaker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActorNamesDoc {
    timeout: Option<String>,
    retry: Option<String>,
    circuit_breaker: Option<String>,
    circuit_breaker_scope: Option<String>,
    circuit_breaker_cache_size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentNamesDoc {
    outbound: Option<NamesDoc>,
    /// Inbound policies (pub/sub, bindings delivering to the app): accepted, not used, as no
    /// component here delivers to the app.
    #[allow(dead_code)]
    inbound: Option<NamesDoc>,
}

// ---- resolution ----

/// The named policies of every resource, checked.
#[derive(Default)]
struct Named {
    timeouts: BTreeMap<String, u64>,
    retries: BTreeMap<String, RetrySpec>,
    breakers: BTreeMap<String, BreakerSpec>,
}

/// Where a value came from, for errors: `file: spec.policies.retries.x.duration`.
struct Place<'a> {
    file: &'a Path,
}

impl Place<'_> {
    fn error(&self, field: &str, message: impl std::fmt::Display) -> ResiliencyError {
        ResiliencyError(format!("{}: {field}: {message}", self.file.display()))
    }

    fn duration_ms(&self, field: &str, value: &str) -> Result<u64, ResiliencyError> {
        parse_go_duration_ms(value).map_err(|e| self.error(field, e))
    }
}

fn retry_spec(place: &Place, field: &str, doc: &RetryDoc) -> Result<RetrySpec, ResiliencyError> {
    let backoff = match doc.policy.as_str() {
        "constant" => {
            if doc.max_interval.is_some() {
                tracing::warn!(file = %place.file.display(), "{field}.maxInterval applies to the exponential policy only; ignored");
            }
            let duration_ms = match &doc.duration {
                Some(d) => place.duration_ms(&format!("{field}.duration"), d)?,
                None => 5_000,
            };
            Backoff::Constant { duration_ms }
        }
        "exponential" => {
            if doc.duration.is_some() {
                tracing::warn!(file = %place.file.display(), "{field}.duration applies to the constant policy only (the exponential one starts at 500ms); ignored");
            }
            let max_interval_ms = match &doc.max_interval {
                Some(d) => place.duration_ms(&format!("{field}.maxInterval"), d)?,
                None => 60_000,
            };
            if max_interval_ms == 0 {
                return Err(place.error(&format!("{field}.maxInterval"), "must be positive"));
            }
            Backoff::Exponential { max_interval_ms }
        }
        other => {
            return Err(place.error(
                &format!("{field}.policy"),
                format!("{other:?} is not a retry policy (constant or exponential)"),
            ))
        }
    };
    let max_retries = match doc.max_retries {
        None | Some(-1) => None,
        Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Some(n as u32),
        Some(n) => {
            return Err(place.error(
                &format!("{field}.maxRetries"),
                format!("{n} is not -1 (unlimited) or a count of retries"),
            ))
        }
    };
    let codes = |name: &str, codes: &Option<Codes>, range: std::ops::RangeInclusive<u32>| {
        let text = match codes {
            None => return Ok(None),
            Some(Codes::Text(t)) => t.clone(),
            Some(Codes::Number(n)) => n.to_string(),
        };
        CodeSet::parse(&text, range)
            .map(Some)
            .map_err(|e| place.error(&format!("{field}.matching.{name}"), e))
    };
    let (http, grpc) = match &doc.matching {
        None => (None, None),
        Some(m) => (
            codes("httpStatusCodes", &m.http_status_codes, 100..=599)?,
            codes("gRPCStatusCodes", &m.grpc_status_codes, 0..=16)?,
        ),
    };
    Ok(RetrySpec {
        name: field.rsplit('.').next().unwrap_or_default().to_owned(),
        backoff,
        max_retries,
        http_codes: http,
        grpc_codes: grpc,
    })
}

fn breaker_spec(
    place: &Place,
    field: &str,
    name: &str,
    doc: &BreakerDoc,
) -> Result<BreakerSpec, ResiliencyError> {
    let interval_ms = match &doc.interval {
        Some(d) => place.duration_ms(&format!("{field}.interval"), d)?,
        None => 0,
    };
    let timeout_ms = match &doc.timeout {
        Some(d) => place.duration_ms(&format!("{field}.timeout"), d)?,
        None => 60_000,
    };
    if timeout_ms == 0 {
        return Err(place.error(&format!("{field}.timeout"), "must be positive"));
    }
    let trip = TripCondition::parse(doc.trip.as_deref().unwrap_or("consecutiveFailures > 5"))
        .map_err(|e| place.error(&format!("{field}.trip"), e))?;
    Ok(BreakerSpec {
        name: name.to_owned(),
        max_requests: doc.max_requests.unwrap_or(1).max(1),
        interval_ms,
        timeout_ms,
        trip,
    })
}

impl Named {
    fn add(&mut self, place: &Place, policies: &Policies) -> Result<(), ResiliencyError> {
        for (name, value) in &policies.timeouts {
            let field = format!("spec.policies.timeouts.{name}");
            let ms = place.duration_ms(&field, value)?;
            if ms == 0 {
                return Err(place.error(&field, "must be positive"));
            }
            if self.timeouts.insert(name.clone(), ms).is_some() {
                return Err(place.error(&field, "is defined twice"));
            }
        }
        for (name, doc) in &policies.retries {
            let field = format!("spec.policies.retries.{name}");
            let spec = retry_spec(place, &field, doc)?;
            if self.retries.insert(name.clone(), spec).is_some() {
                return Err(place.error(&field, "is defined twice"));
            }
        }
        for (name, doc) in &policies.circuit_breakers {
            let field = format!("spec.policies.circuitBreakers.{name}");
            let spec = breaker_spec(place, &field, name, doc)?;
            if self.breakers.insert(name.clone(), spec).is_some() {
                return Err(place.error(&field, "is defined twice"));
            }
        }
        Ok(())
    }

    /// The first of `names` that is defined.
    fn first<'a, T>(map: &'a BTreeMap<String, T>, names: &[String]) -> Option<&'a T> {
        names.iter().find_map(|n| map.get(n))
    }

    /// A target's policies: those it names, else the first default defined for each of
    /// `default_kinds` (`["Actor", ""]` → `DefaultActorRetryPolicy`, `DefaultRetryPolicy`).
    fn resolve(
        &self,
        place: &Place,
        field: &str,
        names: &NamesDoc,
        default_kinds: &[&str],
    ) -> Result<TargetSpec, ResiliencyError> {
        let defaults = |what: &str| -> Vec<String> {
            default_kinds
                .iter()
                .map(|k| format!("Default{k}{what}Policy"))
                .collect()
        };
        let timeout_ms = match &names.timeout {
            Some(name) => Some(*self.timeouts.get(name).ok_or_else(|| {
                place.error(
                    &format!("{field}.timeout"),
                    format!("no timeout policy named {name:?}"),
                )
            })?),
            None => Self::first(&self.timeouts, &defaults("Timeout")).copied(),
        };
        let retry = match &names.retry {
            Some(name) => Some(self.retries.get(name).cloned().ok_or_else(|| {
                place.error(
                    &format!("{field}.retry"),
                    format!("no retry policy named {name:?}"),
                )
            })?),
            None => Self::first(&self.retries, &defaults("Retry")).cloned(),
        };
        let breaker = match &names.circuit_breaker {
            Some(name) => Some(self.breakers.get(name).cloned().ok_or_else(|| {
                place.error(
                    &format!("{field}.circuitBreaker"),
                    format!("no circuit breaker policy named {name:?}"),
                )
            })?),
            None => Self::first(&self.breakers, &defaults("CircuitBreaker")).cloned(),
        };
        Ok(TargetSpec {
            timeout_ms,
            retry,
            breaker,
            scope: BreakerScope::Type,
            breaker_cache_size: DEFAULT_BREAKER_CACHE_SIZE,
        })
    }
}

const ACTOR_DEFAULTS: &[&str] = &["Actor", ""];
const APP_DEFAULTS: &[&str] = &["App", ""];
const STATE_DEFAULTS: &[&str] = &[
    "StatestoreComponentOutbound",
    "ComponentOutbound",
    "Component",
    "",
];

fn scope_of(
    place: &Place,
    field: &str,
    scope: Option<&str>,
) -> Result<BreakerScope, ResiliencyError> {
    match scope {
        None | Some("id") => Ok(BreakerScope::Id),
        Some("type") => Ok(BreakerScope::Type),
        Some("both") => Ok(BreakerScope::Both),
        Some(other) => Err(place.error(
            &format!("{field}.circuitBreakerScope"),
            format!("{other:?} is not a scope (id, type or both)"),
        )),
    }
}

/// The Resiliency resources among `documents` that apply to `app_id`, resolved.
pub fn resolve(
    documents: &[ResourceDocument],
    app_id: &str,
) -> Result<ResiliencyConfig, ResiliencyError> {
    let mut read = Vec::new();
    for resource in documents
        .iter()
        .filter(|d| d.kind.as_deref() == Some("Resiliency"))
    {
        let document: Document = resource.parse().map_err(ResiliencyError)?;
        let place = Place {
            file: &resource.file,
        };
        if !document.api_version.starts_with("dapr.io/") {
            return Err(place.error(
                "apiVersion",
                format!(
                    "{:?} is not a Dapr one (dapr.io/v1alpha1)",
                    document.api_version
                ),
            ));
        }
        if !document.scopes.is_empty() && !document.scopes.iter().any(|s| s == app_id) {
            tracing::info!(resource = %document.metadata.name, app_id, "resiliency resource scoped to other apps");
            continue;
        }
        read.push((resource, document));
    }
    let mut named = Named::default();
    for (resource, document) in &read {
        named.add(
            &Place {
                file: &resource.file,
            },
            &document.spec.policies,
        )?;
    }
    let mut config = ResiliencyConfig {
        built_in_actor_retries: named.retries.get(BUILT_IN_ACTOR_RETRIES).cloned(),
        ..ResiliencyConfig::default()
    };
    let none = NamesDoc::default();
    for (resource, document) in &read {
        let place = Place {
            file: &resource.file,
        };
        config.resources.push(document.metadata.name.clone());
        let targets = &document.spec.targets;
        for (actor_type, names) in &targets.actors {
            let field = format!("spec.targets.actors.{actor_type}");
            let plain = NamesDoc {
                timeout: names.timeout.clone(),
                retry: names.retry.clone(),
                circuit_breaker: names.circuit_breaker.clone(),
            };
            let mut spec = named.resolve(&place, &field, &plain, ACTOR_DEFAULTS)?;
            spec.scope = scope_of(&place, &field, names.circuit_breaker_scope.as_deref())?;
            spec.breaker_cache_size = match names.circuit_breaker_cache_size {
                None => DEFAULT_BREAKER_CACHE_SIZE,
                Some(0) => {
                    return Err(place.error(
                        &format!("{field}.circuitBreakerCacheSize"),
                        "must be positive",
                    ))
                }
                Some(n) => n.min(1_000_000) as usize,
            };
            if config.actors.insert(actor_type.clone(), spec).is_some() {
                return Err(place.error(&field, "is a target twice"));
            }
        }
        for (app, names) in &targets.apps {
            let field = format!("spec.targets.apps.{app}");
            let spec = named.resolve(&place, &field, names, APP_DEFAULTS)?;
            if app == app_id {
                config.app = Some(spec);
            }
        }
        for (component, names) in &targets.components {
            let field = format!("spec.targets.components.{component}.outbound");
            let spec = named.resolve(
                &place,
                &field,
                names.outbound.as_ref().unwrap_or(&none),
                STATE_DEFAULTS,
            )?;
            if config.components.insert(component.clone(), spec).is_some() {
                return Err(place.error(
                    &format!("spec.targets.components.{component}"),
                    "is a target twice",
                ));
            }
        }
    }
    if let Some((resource, _)) = read.first() {
        let place = Place {
            file: &resource.file,
        };
        let default_actor = named.resolve(&place, "defaults", &none, ACTOR_DEFAULTS)?;
        config.default_actor = (!default_actor.is_empty()).then_some(TargetSpec {
            scope: BreakerScope::Type,
            ..default_actor
        });
        if config.app.is_none() {
            let app = named.resolve(&place, "defaults", &none, APP_DEFAULTS)?;
            config.app = (!app.is_empty()).then_some(app);
        }
        let state = named.resolve(&place, "defaults", &none, STATE_DEFAULTS)?;
        config.default_state_component = (!state.is_empty()).then_some(state);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::read_documents;

    fn load(text: &str) -> Result<ResiliencyConfig, ResiliencyError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("resiliency.yaml"), text).unwrap();
        resolve(&read_documents(dir.path()).unwrap(), "app")
    }

    const FULL: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: myresiliency
spec:
  policies:
    timeouts:
      general: 5s
      fast: 250ms
    retries:
      important:
        policy: constant
        duration: 200ms
        maxRetries: 3
        matching:
          gRPCStatusCodes: 14
          httpStatusCodes: "429,500-503"
      forever:
        policy: exponential
        maxInterval: 15s
        maxRetries: -1
    circuitBreakers:
      simpleCB:
        maxRequests: 2
        interval: 8s
        timeout: 45s
        trip: consecutiveFailures > 8
  targets:
    actors:
      Counter:
        timeout: fast
        retry: important
        circuitBreaker: simpleCB
        circuitBreakerScope: both
        circuitBreakerCacheSize: 10
    apps:
      app:
        timeout: general
      other-app:
        retry: forever
    components:
      statestore:
        outbound:
          retry: forever
---
"#;

    #[test]
    fn a_full_resource_resolves() {
        let config = load(FULL).expect("valid");
        assert_eq!(config.resources, ["myresiliency"]);
        let counter = &config.actors["Counter"];
        assert_eq!(counter.timeout_ms, Some(250));
        assert_eq!(counter.scope, BreakerScope::Both);
        assert_eq!(counter.breaker_cache_size, 10);
        let retry = counter.retry.as_ref().unwrap();
        assert_eq!(retry.backoff, Backoff::Constant { duration_ms: 200 });
        assert_eq!(retry.max_retries, Some(3));
        let breaker = counter.breaker.as_ref().unwrap();
        assert_eq!(
            (
                breaker.max_requests,
                breaker.interval_ms,
                breaker.timeout_ms
            ),
            (2, 8_000, 45_000)
        );
        assert_eq!(config.app.as_ref().unwrap().timeout_ms, Some(5_000));
        let store = config.components["statestore"].retry.as_ref().unwrap();
        assert_eq!(
            store.backoff,
            Backoff::Exponential {
                max_interval_ms: 15_000
            }
        );
        assert_eq!(store.max_retries, None);
        assert_eq!(config.default_actor, None);
    }

    #[test]
    fn default_policies_fill_targets_that_name_none() {
        let config = load(
            "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\nspec:\n  policies:\n    timeouts: {DefaultTimeoutPolicy: 3s, DefaultActorTimeoutPolicy: 1s}\n    retries:\n      DaprBuiltInActorRetries: {policy: constant, duration: 1s, maxRetries: 3}\n",
        )
        .expect("valid");
        assert_eq!(
            config.default_actor.as_ref().unwrap().timeout_ms,
            Some(1_000)
        );
        assert_eq!(config.app.as_ref().unwrap().timeout_ms, Some(3_000));
        assert_eq!(
            config.default_state_component.as_ref().unwrap().timeout_ms,
            Some(3_000)
        );
        assert_eq!(
            config.built_in_actor_retries.as_ref().unwrap().max_retries,
            Some(3)
        );
    }

    #[test]
    fn scopes_leave_other_apps_alone() {
        let config = load(&FULL.replace(
            "spec:\n  policies",
            "scopes: [someone-else]\nspec:\n  policies",
        ))
        .unwrap();
        assert_eq!(config, ResiliencyConfig::default());
    }

    #[test]
    fn bad_values_name_the_file_and_field() {
        let cases = [
            (
                "duration: 200ms",
                "duration: 200 ms",
                "spec.policies.retries.important.duration",
            ),
            (
                "policy: constant",
                "policy: linear",
                "spec.policies.retries.important.policy",
            ),
            (
                "maxRetries: 3",
                "maxRetries: -2",
                "spec.policies.retries.important.maxRetries",
            ),
            (
                "gRPCStatusCodes: 14",
                "gRPCStatusCodes: 17",
                "gRPCStatusCodes",
            ),
            (
                "trip: consecutiveFailures > 8",
                "trip: consecutiveFailures >> 8",
                "spec.policies.circuitBreakers.simpleCB.trip",
            ),
            (
                "retry: important",
                "retry: importnt",
                "spec.targets.actors.Counter.retry",
            ),
            (
                "circuitBreakerScope: both",
                "circuitBreakerScope: all",
                "circuitBreakerScope",
            ),
            (
                "maxRequests: 2",
                "maxRequests: 2\n        maxRequets: 3",
                "maxRequets",
            ),
            ("fast: 250ms", "fast: 0s", "spec.policies.timeouts.fast"),
        ];
        for (from, to, needle) in cases {
            assert!(FULL.contains(from), "{from}");
            let error = load(&FULL.replace(from, to)).expect_err(to).to_string();
            assert!(error.contains(needle), "{error:?} lacks {needle:?}");
            assert!(
                error.contains("resiliency.yaml"),
                "{error:?} lacks the file"
            );
        }
    }
}
