//! [`TestDir`]: the one kind of temp dir the tests create (for clusters, hosts, PostgreSQL,
//! apps, or a test's own files).
//!
//! It is deleted when dropped, unless the test failed (the thread is panicking) or
//! `ROOKERY_KEEP_TEST_DIRS` is set: then it is kept, and its path printed, for post-mortems.
//! Whoever owns processes writing into it should kill them before the dir is dropped (declare
//! the dir after them), so that a kept dir holds complete logs.

use std::path::{Path, PathBuf};

/// A temp dir that is kept, and announced, when the test fails (or `ROOKERY_KEEP_TEST_DIRS`).
pub struct TestDir {
    /// Taken (and kept on disk) when the dir is to be kept.
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    /// A new empty dir in the system temp dir, its name starting with `prefix`.
    pub fn new(prefix: &str) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("create temp dir");
        let path = dir.path().to_owned();
        TestDir {
            dir: Some(dir),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let keep = std::env::var_os("ROOKERY_KEEP_TEST_DIRS").is_some();
        if std::thread::panicking() || keep {
            if let Some(dir) = self.dir.take() {
                eprintln!("test dir kept: {}", dir.keep().display());
            }
        }
    }
}
