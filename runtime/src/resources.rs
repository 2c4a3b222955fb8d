//! The documents of a `--resources-path` directory, as daprd reads them: every `*.yaml` and
//! `*.yml` file, in name order, each holding one or more YAML documents. Components
//! (`crate::state::component`) and Resiliency policies (`crate::resiliency`) are picked
//! from them by `kind`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Most files read from a resources directory.
pub const MAX_RESOURCE_FILES: usize = 1024;

/// One document of one file.
pub struct ResourceDocument {
    pub file: PathBuf,
    /// Its `kind` (`Component`, `Resiliency`, …), if it names one.
    pub kind: Option<String>,
    /// The document's text position: which document of its file, from 0.
    pub index: usize,
    /// The whole file, so that a typed parse of the document reports lines and fields.
    text: std::sync::Arc<str>,
}

impl ResourceDocument {
    /// The document parsed as `T`; the error names the file, the field's path and its line.
    pub fn parse<T: for<'de> Deserialize<'de>>(&self) -> Result<T, String> {
        let document = serde_yaml::Deserializer::from_str(&self.text)
            .nth(self.index)
            .ok_or_else(|| format!("{}: document {} vanished", self.file.display(), self.index))?;
        T::deserialize(document).map_err(|e| format!("{}: {e}", self.file.display()))
    }
}

/// Every document of the YAML files in `dir`.
pub fn read_documents(dir: &Path) -> Result<Vec<ResourceDocument>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read resources path {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .take(MAX_RESOURCE_FILES)
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for file in files {
        let text: std::sync::Arc<str> = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?
            .into();
        for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = serde_yaml::Value::deserialize(document)
                .map_err(|e| format!("{} is not a valid resource file: {e}", file.display()))?;
            if value.is_null() {
                continue; // an empty document, as after a trailing `---`
            }
            documents.push(ResourceDocument {
                file: file.clone(),
                kind: value
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .map(str::to_owned),
                index,
                text: text.clone(),
            });
        }
    }
    Ok(documents)
}
