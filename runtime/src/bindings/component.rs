//! `bindings.cron` components of `--resources-path`, checked into [`CronBindingConfig`]s.
//!
//! ```yaml
//! apiVersion: dapr.io/v1alpha1
//! kind: Component
//! metadata:
//!   name: tick                    # the app receives POST /tick
//! scopes: [counter-app]           # optional: the app ids it applies to
//! spec:
//!   type: bindings.cron
//!   version: v1
//!   metadata:
//!   - name: schedule              # 6-field cron with seconds, 5 fields (no seconds),
//!     value: "*/2 * * * * *"      # @every <Go duration>, @daily, @hourly, ...
//!   - name: direction             # optional; the only direction of a cron binding
//!     value: input
//! ```
//!
//! As daprd's cron binding (components-contrib `bindings/cron/cron.go`): `schedule` is
//! required, its seconds field optional, and metadata names match in any case. Unlike
//! daprd, which ignores metadata it does not know, any other metadata entry is an error,
//! and so is `direction: output` (a cron binding has no output side) and a time zone other
//! than UTC (`CRON_TZ=`): schedules are evaluated in UTC. An error names the file, the
//! component and the field; a component with `spec.ignoreErrors: true` is skipped instead,
//! with a warning, as daprd skips a component that fails to initialise. Components scoped to
//! other app ids are not checked.
//! Documents of other kinds, and components of other types, are left to their readers.

use std::collections::BTreeSet;
use std::path::Path;

use rookery_core::jobs::{JobError, JobSchedule};
use serde::Deserialize;

use crate::config::CronBindingConfig;
use crate::resources::ResourceDocument;

/// The component type this module reads.
pub const CRON_TYPE: &str = "bindings.cron";

/// A bad binding component: the file, the component and the field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bindings: {0}")]
pub struct BindingError(pub String);

/// Just enough of any document to tell whether it is a cron binding.
#[derive(Deserialize)]
struct Header {
    spec: Option<HeaderSpec>,
}

#[derive(Deserialize)]
struct HeaderSpec {
    #[serde(rename = "type")]
    component_type: Option<String>,
}

/// A cron binding component as written.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    #[allow(dead_code)]
    api_version: Option<String>,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    scopes: Vec<String>,
    /// The secret store of `secretKeyRef`s; nothing here reads secrets.
    #[allow(dead_code)]
    auth: Option<serde_yaml::Value>,
    spec: Spec,
}

#[derive(Default, Deserialize)]
struct ObjectMeta {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    #[allow(dead_code)]
    #[serde(rename = "type")]
    component_type: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    ignore_errors: bool,
    /// How long daprd waits for the component to initialise; a cron binding has nothing to
    /// wait for.
    #[allow(dead_code)]
    init_timeout: Option<serde_yaml::Value>,
    #[serde(default)]
    metadata: Vec<MetadataItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetadataItem {
    name: String,
    value: Option<serde_yaml::Value>,
    secret_key_ref: Option<serde_yaml::Value>,
    env_ref: Option<serde_yaml::Value>,
}

/// Every `bindings.cron` component of `documents` that applies to `app_id`.
pub fn resolve(
    documents: &[ResourceDocument],
    app_id: &str,
) -> Result<Vec<CronBindingConfig>, BindingError> {
    let mut bindings: Vec<CronBindingConfig> = Vec::new();
    let mut names = BTreeSet::new();
    for resource in documents
        .iter()
        .filter(|d| d.kind.as_deref() == Some("Component"))
    {
        let header: Header = resource.parse().map_err(BindingError)?;
        let is_cron = header
            .spec
            .and_then(|spec| spec.component_type)
            .is_some_and(|t| t == CRON_TYPE);
        if !is_cron {
            continue;
        }
        let document: Document = resource.parse().map_err(BindingError)?;
        let name = document.metadata.name.clone();
        if !document.scopes.is_empty() && !document.scopes.iter().any(|s| s == app_id) {
            tracing::info!(binding = %name, app_id, "cron binding scoped to other apps");
            continue;
        }
        let place = Place {
            file: &resource.file,
            name: &name,
        };
        match check(&place, &document) {
            Ok(binding) => {
                if !names.insert(binding.name.clone()) {
                    return Err(place.error(
                        "metadata.name",
                        "another cron binding of this app has this name",
                    ));
                }
                bindings.push(binding);
            }
            Err(e) if document.spec.ignore_errors => {
                tracing::warn!(error = %e, "cron binding skipped (spec.ignoreErrors)");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(bindings)
}

/// Where a component was read, for its errors.
struct Place<'a> {
    file: &'a Path,
    name: &'a str,
}

impl Place<'_> {
    fn error(&self, field: &str, message: impl std::fmt::Display) -> BindingError {
        BindingError(format!(
            "{}: component {:?} ({CRON_TYPE}): {field}: {message}",
            self.file.display(),
            self.name
        ))
    }
}

fn check(place: &Place, document: &Document) -> Result<CronBindingConfig, BindingError> {
    if document.metadata.name.trim().is_empty() {
        return Err(place.error(
            "metadata.name",
            "a binding needs a name: the app receives POST /{name}",
        ));
    }
    if !matches!(document.spec.version.as_str(), "" | "v0" | "v1") {
        return Err(place.error(
            "spec.version",
            format!(
                "{:?}: {CRON_TYPE} has version v1 only",
                document.spec.version
            ),
        ));
    }
    let mut schedule = None;
    let mut seen = BTreeSet::new();
    for item in &document.spec.metadata {
        let key = item.name.to_ascii_lowercase();
        let field = format!("spec.metadata {:?}", item.name);
        if !seen.insert(key.clone()) {
            return Err(place.error(&field, "given twice"));
        }
        let value = item_value(place, &field, item)?;
        match key.as_str() {
            "schedule" => {
                schedule = Some(parse_schedule(&value).map_err(|e| place.error(&field, e))?)
            }
            "direction" => check_direction(&value).map_err(|e| place.error(&field, e))?,
            "route" => {
                return Err(place.error(
                    &field,
                    "custom routes are not supported: the app receives POST /{binding name}",
                ))
            }
            _ => {
                return Err(place.error(
                    &field,
                    format!("unknown metadata of {CRON_TYPE}: it takes schedule and direction"),
                ))
            }
        }
    }
    let schedule = schedule.ok_or_else(|| {
        place.error(
            "spec.metadata \"schedule\"",
            "schedule not set: a cron binding needs one",
        )
    })?;
    Ok(CronBindingConfig {
        name: document.metadata.name.clone(),
        schedule,
    })
}

fn item_value(place: &Place, field: &str, item: &MetadataItem) -> Result<String, BindingError> {
    if item.secret_key_ref.is_some() || item.env_ref.is_some() {
        return Err(place.error(
            field,
            "secretKeyRef and envRef are not supported: give its value",
        ));
    }
    match &item.value {
        Some(serde_yaml::Value::String(s)) => Ok(s.clone()),
        Some(serde_yaml::Value::Bool(b)) => Ok(b.to_string()),
        Some(serde_yaml::Value::Number(n)) => Ok(n.to_string()),
        None | Some(serde_yaml::Value::Null) => Ok(String::new()),
        Some(_) => Err(place.error(field, "the value must be a string")),
    }
}

/// daprd's `direction`: `input`, `output` or both, comma-separated.
fn check_direction(value: &str) -> Result<(), String> {
    let mut input = false;
    for part in value.split(',').map(str::trim) {
        match part.to_ascii_lowercase().as_str() {
            "input" => input = true,
            "output" => {
                return Err(format!(
                    "{value:?}: a cron binding is an input binding only"
                ))
            }
            _ => return Err(format!("{value:?}: expected \"input\"")),
        }
    }
    if !input {
        return Err(format!("{value:?}: expected \"input\""));
    }
    Ok(())
}

/// A cron binding's `schedule`: the forms of [`JobSchedule`], and, as daprd's cron binding
/// takes them (its parser's seconds field is optional), 5-field lines without seconds,
/// which fire at second 0. A zero `@every` interval is refused: it would never pause.
pub fn parse_schedule(value: &str) -> Result<JobSchedule, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("schedule not set: a cron binding needs one".to_owned());
    }
    let (zone, line) = split_zone(trimmed);
    let with_seconds = if !line.starts_with('@') && line.split_whitespace().count() == 5 {
        format!("{zone}0 {line}")
    } else {
        trimmed.to_owned()
    };
    let schedule = JobSchedule::parse(&with_seconds).map_err(|e| match e {
        JobError::Schedule { reason, .. } => format!("invalid schedule {value:?}: {reason}"),
        other => other.to_string(),
    })?;
    if schedule.interval_ms() == Some(0) {
        return Err(format!(
            "invalid schedule {value:?}: an interval of 0 would fire without pause"
        ));
    }
    Ok(schedule)
}

/// A `TZ=`/`CRON_TZ=` prefix (with its space) and the line after it.
fn split_zone(value: &str) -> (&str, &str) {
    if value.starts_with("TZ=") || value.starts_with("CRON_TZ=") {
        if let Some(at) = value.find(char::is_whitespace) {
            let rest = value[at..].trim_start();
            let zone_end = value.len() - rest.len();
            return (&value[..zone_end], rest);
        }
    }
    ("", value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::read_documents;

    fn load(files: &[(&str, &str)], app_id: &str) -> Result<Vec<CronBindingConfig>, BindingError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        resolve(&read_documents(dir.path()).unwrap(), app_id)
    }

    fn cron(name: &str, metadata: &str) -> String {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: bindings.cron\n  version: v1\n  metadata:\n{metadata}"
        )
    }

    fn binding(name: &str, schedule: &str) -> CronBindingConfig {
        CronBindingConfig {
            name: name.to_owned(),
            schedule: JobSchedule::parse(schedule).unwrap(),
        }
    }

    #[test]
    fn cron_components_are_read_and_others_left_alone() {
        let tick = cron(
            "tick",
            "  - name: schedule\n    value: \"*/2 * * * * *\"\n  - name: direction\n    value: input\n",
        );
        let every = cron("every", "  - name: Schedule\n    value: \"@every 1s\"\n");
        let state = "kind: Component\nmetadata: {name: s}\nspec: {type: state.sled, somethingElse: 1}\n---\nkind: Resiliency\nmetadata: {name: r}\nspec: {}\n";
        let got = load(
            &[("a.yaml", &tick), ("b.yaml", &every), ("c.yaml", state)],
            "app",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                binding("tick", "*/2 * * * * *"),
                binding("every", "@every 1s")
            ]
        );
        assert_eq!(load(&[("c.yaml", state)], "app").unwrap(), []);
    }

    #[test]
    fn scopes_leave_other_apps_alone() {
        let scoped = format!(
            "scopes: [other]\n{}",
            cron("tick", "  - name: schedule\n    value: bogus\n")
        );
        assert_eq!(load(&[("a.yaml", &scoped)], "app").unwrap(), []);
        assert!(load(&[("a.yaml", &scoped)], "other").is_err());
        let mine = format!(
            "scopes: [app]\n{}",
            cron("tick", "  - name: schedule\n    value: \"@every 5s\"\n")
        );
        assert_eq!(
            load(&[("a.yaml", &mine)], "app").unwrap(),
            [binding("tick", "@every 5s")]
        );
    }

    #[test]
    fn five_fields_have_no_seconds() {
        let schedule = parse_schedule("*/5 * * * *").unwrap();
        // 00:00:01 → 00:05:00, at second 0.
        assert_eq!(schedule.next_after(1_000), Some(300_000));
        let zoned = parse_schedule("CRON_TZ=UTC 30 * * * *").unwrap();
        assert_eq!(zoned.next_after(0), Some(30 * 60_000));
        assert_eq!(
            parse_schedule("@daily").unwrap().next_after(1),
            Some(86_400_000)
        );
    }

    #[test]
    fn bad_components_name_file_and_field() {
        let cases = [
            (cron("t", "  - name: schedule\n    value: bogus\n"), "spec.metadata \"schedule\": invalid schedule \"bogus\""),
            (cron("t", "  - name: schedule\n    value: \"\"\n"), "schedule not set"),
            (cron("t", "  - name: direction\n    value: input\n"), "schedule not set"),
            (cron("t", "  - name: schedule\n    value: \"@every 0s\"\n"), "interval of 0"),
            (cron("t", "  - name: schedule\n    value: \"CRON_TZ=Europe/Paris 0 * * * * *\"\n"), "UTC"),
            (
                cron("t", "  - name: schedule\n    value: \"@every 1s\"\n  - name: direction\n    value: output\n"),
                "spec.metadata \"direction\": \"output\": a cron binding is an input binding only",
            ),
            (
                cron("t", "  - name: schedule\n    value: \"@every 1s\"\n  - name: direction\n    value: \"input, output\"\n"),
                "input binding only",
            ),
            (
                cron("t", "  - name: schedule\n    value: \"@every 1s\"\n  - name: scheduel\n    value: x\n"),
                "spec.metadata \"scheduel\": unknown metadata",
            ),
            (
                cron("t", "  - name: schedule\n    value: \"@every 1s\"\n  - name: route\n    value: /x\n"),
                "custom routes",
            ),
            (
                cron("t", "  - name: schedule\n    secretKeyRef: {name: s, key: k}\n"),
                "secretKeyRef",
            ),
            (
                cron("t", "  - name: schedule\n    value: \"@every 1s\"\n  - name: SCHEDULE\n    value: \"@every 2s\"\n"),
                "given twice",
            ),
            (cron("t", "  - name: schedule\n    valeu: \"@every 1s\"\n"), "unknown field `valeu`"),
            (cron("", "  - name: schedule\n    value: \"@every 1s\"\n"), "metadata.name"),
            (
                cron("t", "  - name: schedule\n    value: \"@every 1s\"\n").replace("version: v1", "version: v2"),
                "spec.version",
            ),
        ];
        for (text, needle) in cases {
            let error = load(&[("cron.yaml", &text)], "app")
                .unwrap_err()
                .to_string();
            assert!(error.contains("cron.yaml"), "{error:?} lacks the file");
            assert!(error.contains(needle), "{error:?} lacks {needle:?}");
        }
        let twice = cron("t", "  - name: schedule\n    value: \"@every 1s\"\n");
        let error = load(&[("a.yaml", &twice), ("b.yaml", &twice)], "app")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("b.yaml") && error.contains("metadata.name"),
            "{error}"
        );
    }

    #[test]
    fn ignore_errors_skips_a_bad_component() {
        let text = cron("t", "  - name: schedule\n    value: bogus\n")
            .replace("version: v1", "version: v1\n  ignoreErrors: true");
        assert_eq!(load(&[("a.yaml", &text)], "app").unwrap(), []);
    }
}
