//! Feeds the `--resources-path` document parsers of `rookery_runtime`: the input is written
//! as `resources.yaml` into a scratch directory, which `resources::read_documents` reads;
//! its documents go to the Resiliency resolver (`resiliency::spec::resolve`), the cron
//! binding resolver (`bindings::component::resolve`), and the directory to the state
//! component loader (`state::component::load`). The input is also given to the cron
//! binding's schedule parser (`bindings::component::parse_schedule`).
//!
//! Checks: nothing panics, whatever the YAML (multiple documents, anchors, bad types).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rookery_runtime::{bindings, resiliency, resources, state};

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rookery-fuzz-yaml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = bindings::component::parse_schedule(text);
    let dir = scratch();
    std::fs::write(dir.join("resources.yaml"), text).expect("write the document");
    if let Ok(documents) = resources::read_documents(dir) {
        let _ = resiliency::spec::resolve(&documents, "app");
        let _ = bindings::component::resolve(&documents, "app");
    }
    let _ = state::component::load(dir, std::path::Path::new("/nonexistent-data"));
});
