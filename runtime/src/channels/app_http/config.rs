//! The app's actor configuration, as Dapr apps serve it on `GET /dapr/config`: which actor
//! types it hosts and their settings, globally and per type (`entitiesConfig`), in Go
//! durations. Read into Rookery's per-type options on top of the host's defaults.

use std::collections::BTreeMap;

use rookery_core::schedule::parse_go_duration_ms;
use serde::Deserialize;

use crate::config::{ActorDefaults, TypeOptions};

/// Longest drain a Dapr app may ask for: 0.8 × the placement's default round timeout (3 s),
/// because a host acknowledges a new table only once its moved actors are drained (daprd
/// clamps its drain the same way, to 0.8 × its dissemination timeout).
pub const MAX_DRAIN_TIMEOUT_MS: u64 = 2_400;

/// The settings `GET /dapr/config` may give, globally or for some types.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Settings {
    actor_idle_timeout: Option<String>,
    drain_ongoing_call_timeout: Option<String>,
    reentrancy: Option<Reentrancy>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Reentrancy {
    #[serde(default)]
    enabled: bool,
    max_stack_depth: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct EntityConfig {
    #[serde(default)]
    entities: Vec<String>,
    #[serde(flatten)]
    settings: Settings,
}

/// The whole answer (other keys, e.g. `actorScanInterval` or `drainRebalancedActors`, are
/// accepted and not used: Rookery always drains moved actors).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct AppConfigJson {
    #[serde(default)]
    entities: Vec<String>,
    #[serde(flatten)]
    settings: Settings,
    #[serde(default)]
    entities_config: Vec<EntityConfig>,
}

/// What the app hosts: its types with their options, and a warning for each setting that was
/// not usable (kept at the host's default, as daprd does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppActorConfig {
    pub types: Vec<(String, TypeOptions)>,
    pub warnings: Vec<String>,
}

/// Reads the body of `GET /dapr/config`.
pub fn read_app_config(body: &[u8], defaults: &ActorDefaults) -> Result<AppActorConfig, String> {
    let config: AppConfigJson = serde_json::from_slice(body)
        .map_err(|e| format!("GET /dapr/config answered with invalid JSON: {e}"))?;
    let mut warnings = Vec::new();
    let dapr_defaults = TypeOptions {
        // Dapr resets an actor's idle time on every timer tick too.
        timers_keep_alive: true,
        ..defaults.type_options()
    };
    let base = apply(dapr_defaults, &config.settings, "", &mut warnings);
    let mut types: BTreeMap<String, TypeOptions> = config
        .entities
        .iter()
        .map(|t| (t.clone(), base.clone()))
        .collect();
    for entity in &config.entities_config {
        for actor_type in &entity.entities {
            let options = apply(
                base.clone(),
                &entity.settings,
                &format!("entitiesConfig[{actor_type}]."),
                &mut warnings,
            );
            types.insert(actor_type.clone(), options);
        }
    }
    Ok(AppActorConfig {
        types: types.into_iter().collect(),
        warnings,
    })
}

fn apply(
    mut options: TypeOptions,
    settings: &Settings,
    prefix: &str,
    warnings: &mut Vec<String>,
) -> TypeOptions {
    let mut duration = |field: &str, value: &Option<String>| -> Option<u64> {
        let value = value.as_deref()?;
        match parse_go_duration_ms(value) {
            Ok(0) => {
                warnings.push(format!(
                    "{prefix}{field} {value:?} is zero; the host default is kept"
                ));
                None
            }
            Ok(ms) => Some(ms),
            Err(e) => {
                warnings.push(format!(
                    "{prefix}{field} is not a Go duration ({e}); the host default is kept"
                ));
                None
            }
        }
    };
    if let Some(ms) = duration("actorIdleTimeout", &settings.actor_idle_timeout) {
        options.idle_timeout_ms = ms;
    }
    if let Some(ms) = duration(
        "drainOngoingCallTimeout",
        &settings.drain_ongoing_call_timeout,
    ) {
        if ms > MAX_DRAIN_TIMEOUT_MS {
            warnings.push(format!(
                "{prefix}drainOngoingCallTimeout {ms} ms is clamped to {MAX_DRAIN_TIMEOUT_MS} ms"
            ));
        }
        options.drain_timeout_ms = ms.min(MAX_DRAIN_TIMEOUT_MS);
    }
    if let Some(reentrancy) = &settings.reentrancy {
        options.reentrancy = reentrancy.enabled;
        if let Some(depth) = reentrancy.max_stack_depth.filter(|d| *d > 0) {
            options.max_reentrancy_depth = depth;
        }
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_sdks_config_reads_per_type() {
        let body = br#"{"actorIdleTimeout":"0h10m0s0ms0\u03bcs","actorScanInterval":"0h0m30s0ms0\u03bcs","drainRebalancedActors":true,"reentrancy":{"enabled":true,"maxStackDepth":8},"entitiesConfig":[{"entities":["B"],"actorIdleTimeout":"0h1m30s0ms0\u03bcs"}],"entities":["A","B"]}"#;
        let AppActorConfig { types, warnings } =
            read_app_config(body, &ActorDefaults::default()).expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        let a = &types[0];
        let b = &types[1];
        assert_eq!((a.0.as_str(), a.1.idle_timeout_ms), ("A", 600_000));
        assert_eq!((b.0.as_str(), b.1.idle_timeout_ms), ("B", 90_000));
        assert!(a.1.reentrancy && b.1.reentrancy);
        assert_eq!(a.1.max_reentrancy_depth, 8);
    }

    #[test]
    fn bad_settings_keep_the_defaults_with_a_warning() {
        let body =
            br#"{"entities":["A"],"actorIdleTimeout":"PT5M","drainOngoingCallTimeout":"60s"}"#;
        let defaults = ActorDefaults::default();
        let AppActorConfig { types, warnings } = read_app_config(body, &defaults).expect("valid");
        assert_eq!(types[0].1.idle_timeout_ms, defaults.idle_timeout_ms);
        assert_eq!(types[0].1.drain_timeout_ms, MAX_DRAIN_TIMEOUT_MS);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(read_app_config(b"not json", &defaults).is_err());
        let none = read_app_config(b"{}", &defaults).expect("empty");
        assert!(none.types.is_empty());
    }
}
