//! How the PostgreSQL store reports the driver's and the pool's failures: every one is
//! [`StateError::Unavailable`], with the server's SQLSTATE and message when it sent one.

use super::StateError;

pub(super) fn unavailable(e: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(format!("postgresql: {e}"))
}

pub(super) fn db_error(e: tokio_postgres::Error) -> StateError {
    // `Display` of a server error is only "db error": the detail is in its source.
    match e.as_db_error() {
        Some(db) => unavailable(format!("{}: {}", db.code().code(), db.message())),
        None => unavailable(e),
    }
}
