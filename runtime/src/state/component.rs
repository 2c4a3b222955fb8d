//! Dapr component files: which state store a host uses, read from `--resources-path`.
//!
//! ```yaml
//! apiVersion: dapr.io/v1alpha1
//! kind: Component
//! metadata:
//!   name: statestore
//! spec:
//!   type: state.postgresql        # or state.sled
//!   version: v1
//!   metadata:
//!   - name: connectionString
//!     value: "host=db user=rookery password=… dbname=rookery"
//!   - name: tableName             # optional, default rookery_state
//!     value: rookery_state
//!   - name: actorStateStore       # accepted; every state component here serves actors
//!     value: "true"
//! ```
//!
//! Every `*.yaml`/`*.yml` file of the directory is read (a file may hold several documents);
//! documents of other kinds (read elsewhere), and components of other types (bindings, pub/sub),
//! are skipped.
//! More than one state component is an error unless exactly one says `actorStateStore: "true"`.
//! `state.sled` takes an optional `path` (default: `<data-dir>/state`).
//!
//! A metadata value may come from a secret instead (`crate::secrets`): `secretKeyRef: {name,
//! key}` with the component's `auth: {secretStore: <store component>}`, as in Dapr.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::postgres_store::{PostgresConfig, DEFAULT_TABLE_NAME};
use super::{StateError, StoreConfig};
use crate::secrets::SecretStores;

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(default)]
    metadata: ObjectMeta,
    spec: Option<Spec>,
    #[serde(default)]
    auth: Auth,
}

/// Where the component's `secretKeyRef`s are looked up.
#[derive(Debug, Default, Deserialize)]
struct Auth {
    #[serde(default, rename = "secretStore")]
    secret_store: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SecretKeyRef {
    name: String,
    #[serde(default)]
    key: String,
}

#[derive(Debug, Default, Deserialize)]
struct ObjectMeta {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct Spec {
    #[serde(rename = "type")]
    component_type: String,
    #[serde(default)]
    metadata: Vec<MetadataItem>,
}

#[derive(Debug, Deserialize)]
struct MetadataItem {
    name: String,
    value: Option<serde_yaml::Value>,
    #[serde(rename = "secretKeyRef")]
    secret_key_ref: Option<SecretKeyRef>,
}

/// One state component found in a file.
struct Found<'a> {
    file: PathBuf,
    name: String,
    spec: Spec,
    secret_store: Option<String>,
    secrets: &'a SecretStores,
}

impl Found<'_> {
    fn value(&self, item: &str) -> Result<Option<String>, StateError> {
        let Some(entry) = self.spec.metadata.iter().find(|m| m.name == item) else {
            return Ok(None);
        };
        if let Some(reference) = &entry.secret_key_ref {
            let store = self.secret_store.as_deref().ok_or_else(|| {
                self.error(format!(
                    "metadata {item:?} uses secretKeyRef: name the secret store in auth.secretStore"
                ))
            })?;
            return self
                .secrets
                .get(store, &reference.name, &reference.key)
                .map(Some)
                .map_err(|e| self.error(format!("metadata {item:?}: {e}")));
        }
        Ok(match &entry.value {
            Some(serde_yaml::Value::String(s)) => Some(s.clone()),
            Some(serde_yaml::Value::Bool(b)) => Some(b.to_string()),
            Some(serde_yaml::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    }

    fn is_actor_store(&self) -> bool {
        matches!(self.value("actorStateStore"), Ok(Some(v)) if v.eq_ignore_ascii_case("true"))
    }

    fn error(&self, message: String) -> StateError {
        StateError::Config(format!(
            "component {:?} in {}: {message}",
            self.name,
            self.file.display()
        ))
    }

    fn to_config(&self, data_dir: &Path) -> Result<StoreConfig, StateError> {
        match self.spec.component_type.as_str() {
            "state.postgresql" | "state.postgres" => {
                let connection_string = self.value("connectionString")?.ok_or_else(|| {
                    self.error("state.postgresql needs a connectionString".into())
                })?;
                Ok(StoreConfig::PostgreSql(PostgresConfig {
                    connection_string,
                    table_name: self
                        .value("tableName")?
                        .unwrap_or_else(|| DEFAULT_TABLE_NAME.to_owned()),
                }))
            }
            "state.sled" => Ok(StoreConfig::Sled {
                path: self
                    .value("path")?
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join("state")),
            }),
            other => Err(self.error(format!(
                "state store type {other:?} is not supported (state.postgresql or state.sled)"
            ))),
        }
    }
}

/// The state store the components in `dir` describe, with its component's name; `None` if
/// they describe none.
pub fn load(dir: &Path, data_dir: &Path) -> Result<Option<(String, StoreConfig)>, StateError> {
    let secrets = SecretStores::load(dir).map_err(StateError::Config)?;
    let mut found = Vec::new();
    for resource in crate::resources::read_documents(dir).map_err(StateError::Config)? {
        if resource.kind.as_deref() != Some("Component") {
            continue;
        }
        let document: Document = resource
            .parse()
            .map_err(|e| StateError::Config(format!("not a valid component file: {e}")))?;
        let Some(spec) = document.spec else { continue };
        if spec.component_type.starts_with("state.") {
            found.push(Found {
                file: resource.file.clone(),
                name: document.metadata.name,
                spec,
                secret_store: document.auth.secret_store,
                secrets: &secrets,
            });
        }
    }
    let chosen = match found.len() {
        0 => return Ok(None),
        1 => &found[0],
        _ => {
            let actor_stores: Vec<&Found> = found.iter().filter(|f| f.is_actor_store()).collect();
            match actor_stores.as_slice() {
                [one] => *one,
                _ => {
                    return Err(StateError::Config(format!(
                    "{} state components in {}; mark exactly one with actorStateStore: \"true\"",
                    found.len(),
                    dir.display()
                )))
                }
            }
        }
    };
    Ok(Some((chosen.name.clone(), chosen.to_config(data_dir)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    const POSTGRES: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.postgresql
  version: v1
  metadata:
  - name: connectionString
    value: "host=db user=u password=p database=rookery"
  - name: actorStateStore
    value: "true"
"#;

    #[test]
    fn a_postgresql_component() {
        let dir = dir_with(&[("statestore.yaml", POSTGRES), ("notes.txt", "ignored")]);
        let config = load(dir.path(), Path::new("/data")).unwrap();
        assert_eq!(
            config.map(|(_, config)| config),
            Some(StoreConfig::PostgreSql(PostgresConfig {
                connection_string: "host=db user=u password=p database=rookery".into(),
                table_name: DEFAULT_TABLE_NAME.into(),
            }))
        );
    }

    #[test]
    fn sled_by_default_path_and_other_kinds_skipped() {
        let sled = "kind: Component\nmetadata: {name: s}\nspec: {type: state.sled}\n---\nkind: Configuration\nmetadata: {name: c}\n";
        let pubsub = "kind: Component\nmetadata: {name: p}\nspec: {type: pubsub.redis}\n";
        let dir = dir_with(&[("a.yml", sled), ("b.yaml", pubsub)]);
        assert_eq!(
            load(dir.path(), Path::new("/data")).unwrap(),
            Some((
                "s".to_owned(),
                StoreConfig::Sled {
                    path: PathBuf::from("/data/state")
                }
            ))
        );
        let empty = dir_with(&[("b.yaml", pubsub)]);
        assert_eq!(load(empty.path(), Path::new("/data")).unwrap(), None);
    }

    #[test]
    fn bad_components_are_named() {
        let cases = [
            ("kind: Component\nmetadata: {name: r}\nspec: {type: state.redis}\n", "not supported"),
            ("kind: Component\nmetadata: {name: r}\nspec: {type: state.postgresql}\n", "connectionString"),
            (
                "kind: Component\nmetadata: {name: r}\nspec:\n  type: state.postgresql\n  metadata:\n  - name: connectionString\n    secretKeyRef: {name: s, key: k}\n",
                "secretKeyRef",
            ),
            ("kind: [unclosed", "not a valid resource file"),
        ];
        for (text, needle) in cases {
            let dir = dir_with(&[("c.yaml", text)]);
            let error = load(dir.path(), Path::new("/d")).unwrap_err().to_string();
            assert!(error.contains(needle), "{error:?} lacks {needle:?}");
        }
        let two = dir_with(&[
            ("a.yaml", POSTGRES.replace("\"true\"", "\"false\"").as_str()),
            (
                "b.yaml",
                "kind: Component\nmetadata: {name: s}\nspec: {type: state.sled}\n",
            ),
        ]);
        let error = load(two.path(), Path::new("/d")).unwrap_err().to_string();
        assert!(error.contains("exactly one"), "{error}");
        assert!(load(Path::new("/nonexistent-dir"), Path::new("/d")).is_err());
    }

    #[test]
    fn a_connection_string_comes_from_a_secret() {
        let secrets_dir = tempfile::tempdir().unwrap();
        let secrets = secrets_dir.path().join("secrets.json");
        std::fs::write(&secrets, r#"{"pg": {"conn": "host=db user=u password=p"}}"#).unwrap();
        let store = format!(
            "kind: Component\nmetadata: {{name: local}}\nspec:\n  type: secretstores.local.file\n  metadata:\n  - {{name: secretsFile, value: {}}}\n",
            secrets.display()
        );
        let state = "kind: Component\nmetadata: {name: statestore}\nspec:\n  type: state.postgresql\n  metadata:\n  - name: connectionString\n    secretKeyRef: {name: \"pg:conn\", key: \"pg:conn\"}\nauth:\n  secretStore: local\n";
        let dir = dir_with(&[("secrets.yaml", store.as_str()), ("state.yaml", state)]);
        let (name, config) = load(dir.path(), Path::new("/d")).unwrap().unwrap();
        assert_eq!(name, "statestore");
        let StoreConfig::PostgreSql(pg) = config else {
            panic!("not PostgreSQL: {config:?}")
        };
        assert_eq!(pg.connection_string, "host=db user=u password=p");
        // A secret the store lacks is named, and its store, never a value.
        let missing = state.replace("pg:conn", "pg:nope");
        let dir = dir_with(&[
            ("secrets.yaml", store.as_str()),
            ("state.yaml", missing.as_str()),
        ]);
        let error = load(dir.path(), Path::new("/d")).unwrap_err().to_string();
        assert!(
            error.contains("pg:nope") && error.contains("local"),
            "{error}"
        );
    }
}
