//! Dapr's local secret stores, read from `--resources-path`, so that other components can take
//! a metadata value from a secret (`secretKeyRef`) instead of holding it in plain text:
//!
//! ```yaml
//! apiVersion: dapr.io/v1alpha1
//! kind: Component
//! metadata: {name: localsecrets}
//! spec:
//!   type: secretstores.local.file     # or secretstores.local.env
//!   version: v1
//!   metadata:
//!   - name: secretsFile               # local.file: a JSON file (relative paths: from the
//!     value: /etc/rookery/secrets.json #   host's working directory, as daprd)
//!   - name: nestedSeparator           # local.file, optional: joins nested keys (default ":")
//!     value: ":"
//!   - name: prefix                    # local.env, optional: only variables with this prefix
//!     value: ROOKERY_
//! ```
//!
//! As with daprd's stores (not multi-valued), secret `name` holds one value, under the key
//! `name`: a `secretKeyRef` names the secret and, optionally, that same key. A local file's
//! nested objects are flattened, `{"db": {"url": "…"}}` giving the secret `db:url`. Secret
//! values are never logged, and errors name the store and secret, never the value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::resources::read_documents;

const DEFAULT_NESTED_SEPARATOR: &str = ":";

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(default)]
    metadata: ObjectMeta,
    spec: Option<Spec>,
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
    metadata: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    name: String,
    #[serde(default)]
    value: Option<serde_yaml::Value>,
}

enum Store {
    /// Every secret of the file, flattened.
    File {
        file: PathBuf,
        secrets: BTreeMap<String, String>,
    },
    Env {
        prefix: String,
    },
}

/// The secret stores of a resources directory, by component name.
#[derive(Default)]
pub struct SecretStores {
    stores: BTreeMap<String, Store>,
}

fn text_of(value: &Option<serde_yaml::Value>) -> Option<String> {
    match value {
        Some(serde_yaml::Value::String(s)) => Some(s.clone()),
        Some(serde_yaml::Value::Number(n)) => Some(n.to_string()),
        Some(serde_yaml::Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

fn flatten(
    prefix: &str,
    separator: &str,
    value: &serde_json::Value,
    out: &mut BTreeMap<String, String>,
) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, value) in fields {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}{separator}{key}")
                };
                flatten(&name, separator, value, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

impl SecretStores {
    /// Reads the secret store components of `dir`; a bad one is an error naming its file.
    pub fn load(dir: &Path) -> Result<SecretStores, String> {
        let mut stores = BTreeMap::new();
        for resource in read_documents(dir)? {
            if resource.kind.as_deref() != Some("Component") {
                continue;
            }
            let document: Document = resource.parse()?;
            let Some(spec) = document.spec else { continue };
            let store = match spec.component_type.as_str() {
                "secretstores.local.file" => {
                    let value = |name: &str| {
                        spec.metadata
                            .iter()
                            .find(|m| m.name == name)
                            .and_then(|m| text_of(&m.value))
                    };
                    let file = value("secretsFile").ok_or_else(|| {
                        format!(
                            "{}: secret store {:?}: spec.metadata: secretsFile is missing",
                            resource.file.display(),
                            document.metadata.name
                        )
                    })?;
                    let separator = value("nestedSeparator")
                        .unwrap_or_else(|| DEFAULT_NESTED_SEPARATOR.to_owned());
                    let file = PathBuf::from(file);
                    let text = std::fs::read_to_string(&file).map_err(|e| {
                        format!(
                            "{}: secret store {:?}: cannot read secretsFile {}: {e}",
                            resource.file.display(),
                            document.metadata.name,
                            file.display()
                        )
                    })?;
                    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                        format!(
                            "{}: secret store {:?}: secretsFile {} is not JSON: {e}",
                            resource.file.display(),
                            document.metadata.name,
                            file.display()
                        )
                    })?;
                    let mut secrets = BTreeMap::new();
                    flatten("", &separator, &json, &mut secrets);
                    Store::File { file, secrets }
                }
                "secretstores.local.env" => Store::Env {
                    prefix: spec
                        .metadata
                        .iter()
                        .find(|m| m.name == "prefix")
                        .and_then(|m| text_of(&m.value))
                        .unwrap_or_default(),
                },
                _ => continue,
            };
            stores.insert(document.metadata.name, store);
        }
        Ok(SecretStores { stores })
    }

    /// The value of secret `name` (at `key`, which must be the secret's own name or empty) in
    /// store `store`.
    pub fn get(&self, store: &str, name: &str, key: &str) -> Result<String, String> {
        let found = self.stores.get(store).ok_or_else(|| {
            format!("no secret store {store:?} in --resources-path (secretstores.local.file or secretstores.local.env)")
        })?;
        if !key.is_empty() && key != name {
            return Err(format!(
                "secret {name:?} of store {store:?} has one key, {name:?}, not {key:?}"
            ));
        }
        match found {
            Store::File { file, secrets } => secrets.get(name).cloned().ok_or_else(|| {
                format!("no secret {name:?} in store {store:?} ({})", file.display())
            }),
            Store::Env { prefix } => {
                if !name.starts_with(prefix.as_str()) {
                    return Err(format!(
                        "secret {name:?} does not start with store {store:?}'s prefix {prefix:?}"
                    ));
                }
                std::env::var(name)
                    .map_err(|_| format!("no secret {name:?} in store {store:?} (the environment)"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, String)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_local_file_store_flattens_nested_secrets() {
        let secrets = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            secrets.path(),
            r#"{"pg": {"conn": "host=db password=s3"}, "port": 5432, "flat": "v"}"#,
        )
        .unwrap();
        let component = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: local}}\nspec:\n  type: secretstores.local.file\n  version: v1\n  metadata:\n  - {{name: secretsFile, value: {}}}\n",
            secrets.path().display()
        );
        let dir = dir_with(&[("secrets.yaml", component)]);
        let stores = SecretStores::load(dir.path()).unwrap();
        assert_eq!(
            stores.get("local", "pg:conn", "").unwrap(),
            "host=db password=s3"
        );
        assert_eq!(
            stores.get("local", "pg:conn", "pg:conn").unwrap(),
            "host=db password=s3"
        );
        assert_eq!(stores.get("local", "port", "").unwrap(), "5432");
        let missing = stores.get("local", "nope", "").unwrap_err();
        assert!(missing.contains("no secret \"nope\""), "{missing}");
        assert!(stores.get("local", "flat", "other").is_err());
        assert!(stores.get("elsewhere", "flat", "").is_err());
    }

    #[test]
    fn an_env_store_reads_variables_with_its_prefix() {
        std::env::set_var("ROOKERY_SECRET_TEST_VALUE", "from-env");
        let component = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: env}\nspec:\n  type: secretstores.local.env\n  version: v1\n  metadata:\n  - {name: prefix, value: ROOKERY_SECRET_}\n".to_owned();
        let dir = dir_with(&[("env.yaml", component)]);
        let stores = SecretStores::load(dir.path()).unwrap();
        assert_eq!(
            stores.get("env", "ROOKERY_SECRET_TEST_VALUE", "").unwrap(),
            "from-env"
        );
        assert!(stores.get("env", "PATH", "").is_err(), "outside the prefix");
    }

    #[test]
    fn a_bad_store_names_its_file() {
        let component = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: local}\nspec:\n  type: secretstores.local.file\n  version: v1\n  metadata: []\n".to_owned();
        let dir = dir_with(&[("secrets.yaml", component)]);
        let error = SecretStores::load(dir.path()).err().unwrap();
        assert!(
            error.contains("secrets.yaml") && error.contains("secretsFile"),
            "{error}"
        );
    }
}
