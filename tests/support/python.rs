//! Whether `python3` can run the Python parts of the tests (example apps, SDK clients), and
//! the one rule for when it cannot: skip with the reason, unless `ROOKERY_TEST_REQUIRE_PYTHON`
//! is set (CI installs the packages and sets it), then fail.

use std::path::Path;
use std::process::Command;

/// The arguments of `python3` running the Python counter example
/// (`examples/python/counter_app.py`) against the host at `host_grpc_addr`, with its generated
/// stubs in `stubs_dir`.
pub fn counter_app_args(host_grpc_addr: &str, app_id: &str, stubs_dir: &Path) -> Vec<String> {
    vec![
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/python/counter_app.py")
            .display()
            .to_string(),
        "--host".into(),
        host_grpc_addr.into(),
        "--app-id".into(),
        app_id.into(),
        "--stubs-dir".into(),
        stubs_dir.display().to_string(),
    ]
}

/// Why `python3` cannot `import <modules>` (comma-separated), if it cannot.
pub fn cannot_import(modules: &str) -> Option<String> {
    let probe = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output();
    match probe {
        Err(e) => Some(format!("python3 cannot be run: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "python3 cannot import {modules} ({})",
            // The exception line, e.g. "ModuleNotFoundError: No module named 'grpc'".
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
        )),
        Ok(_) => None,
    }
}

/// True when `test` must return at once because `modules` cannot be imported (it prints why
/// and how to install them from `requirements`); panics instead when
/// `ROOKERY_TEST_REQUIRE_PYTHON` is set, so that a broken install fails rather than skips.
pub fn skip_without(modules: &str, requirements: &str, test: &str) -> bool {
    let Some(why) = cannot_import(modules) else {
        return false;
    };
    if std::env::var_os("ROOKERY_TEST_REQUIRE_PYTHON").is_some() {
        panic!("ROOKERY_TEST_REQUIRE_PYTHON is set but {why}");
    }
    println!("SKIPPED {test}: {why}. Install with: pip install -r {requirements}");
    true
}
