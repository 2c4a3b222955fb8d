//! The PostgreSQL state store: actor state shared by every host of a cluster, so an actor
//! finds its state wherever it activates next.
//!
//! Two tables (names from the component's `tableName`, default `rookery_state`):
//! `<table>` holds one row per actor and key (value, optional expiry), and `<table>_fences`
//! one row per actor (epoch of its latest claim, timers handed off by its last activation).
//! A transaction locks the actor's fence row (`SELECT … FOR UPDATE`), compares the epoch and
//! applies its writes before `COMMIT`, so a superseded activation never writes, and a claim
//! (which updates the same row) waits for a transaction in flight to end. Transactions of
//! many actors waiting at once share one PostgreSQL transaction (`super::postgres_batch`).
//!
//! The schema is created on the first successful connection, under an advisory lock so that
//! hosts starting together do not race. Every operation is bounded by
//! [`STORE_OPERATION_TIMEOUT_MS`]; while the server is down, operations fail with
//! [`StateError::Unavailable`] and nothing is half-written (a transaction not committed is
//! rolled back by the server).
//!
//! TLS follows the connection string's `sslmode` and `sslrootcert`, as libpq's
//! (`super::postgres_tls`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::postgres_batch::{Batcher, Connections};
pub use super::postgres_batch::{MAX_BATCH_BYTES, MAX_BATCH_EXECUTORS, MAX_BATCH_TRANSACTIONS};
use super::postgres_error::{db_error, unavailable};
use super::postgres_tls::{client_config, split_tls_settings, TlsSettings};

use super::{now_ms, Claim, Epoch, StateError, StateOp, StateStore};
use crate::call::ActorKey;

/// Connections one host keeps to PostgreSQL.
pub const MAX_POOL_CONNECTIONS: usize = 16;
/// Bound on any one store operation (waiting for a connection included).
pub const STORE_OPERATION_TIMEOUT_MS: u64 = 5_000;
/// Bound on opening one connection.
const CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Default table name (Dapr's component metadata `tableName`).
pub const DEFAULT_TABLE_NAME: &str = "rookery_state";
/// Longest table name PostgreSQL accepts less the `_fences` suffix.
const MAX_TABLE_NAME_BYTES: usize = 63 - "_fences".len();

#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// libpq key/value (`host=… user=… password=… dbname=…`; Dapr's `database=` is accepted)
    /// or a `postgres://` URL.
    pub connection_string: String,
    pub table_name: String,
}

impl std::fmt::Debug for PostgresConfig {
    // The connection string may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("table_name", &self.table_name)
            .finish_non_exhaustive()
    }
}

/// Reads a connection string: libpq's key/value form (with Dapr's `database` key as an
/// alias of `dbname`) or a URL.
pub fn parse_connection_string(text: &str) -> Result<tokio_postgres::Config, StateError> {
    parse_with_tls(text).map(|(config, _)| config)
}

/// [`parse_connection_string`], with the TLS settings (`sslmode`, `sslrootcert`) apart.
pub fn parse_with_tls(text: &str) -> Result<(tokio_postgres::Config, TlsSettings), StateError> {
    let (text, tls) = split_tls_settings(text.trim())?;
    let text = text.as_str();
    let normalized = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        text.to_owned()
    } else {
        text.split_whitespace()
            .map(|pair| match pair.strip_prefix("database=") {
                Some(name) => format!("dbname={name}"),
                None => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut config = tokio_postgres::Config::from_str(&normalized)
        .map_err(|e| StateError::Config(format!("invalid PostgreSQL connection string: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
    }
    config.ssl_mode(tls.mode.driver_mode());
    Ok((config, tls))
}

fn validate_table_name(name: &str) -> Result<(), StateError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TABLE_NAME_BYTES
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StateError::Config(format!(
            "tableName {name:?} must be 1 to {MAX_TABLE_NAME_BYTES} lowercase letters, digits or underscores, not starting with a digit"
        )))
    }
}

/// The SQL of one table name, built once.
struct Statements {
    schema: String,
    claim_update: String,
    claim_insert: String,
    get: String,
    lock_fence: String,
    hand_off: String,
}

impl Statements {
    fn new(table: &str) -> Statements {
        let fences = format!("{table}_fences");
        Statements {
            schema: format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    actor_type TEXT NOT NULL, actor_id TEXT NOT NULL, key TEXT NOT NULL,
                    value BYTEA NOT NULL, expires_at_ms BIGINT,
                    PRIMARY KEY (actor_type, actor_id, key));
                 CREATE TABLE IF NOT EXISTS {fences} (
                    actor_type TEXT NOT NULL, actor_id TEXT NOT NULL,
                    epoch BIGINT NOT NULL, handed_off_timers BYTEA,
                    PRIMARY KEY (actor_type, actor_id));"
            ),
            // Bumps the epoch and takes the hand-off in one statement: the sub-select reads
            // the row as it was before this update.
            claim_update: format!(
                "UPDATE {fences} f SET epoch = f.epoch + 1, handed_off_timers = NULL
                 FROM (SELECT handed_off_timers AS previous FROM {fences}
                       WHERE actor_type = $1 AND actor_id = $2 FOR UPDATE) old
                 WHERE f.actor_type = $1 AND f.actor_id = $2
                 RETURNING f.epoch, old.previous"
            ),
            claim_insert: format!(
                "INSERT INTO {fences} (actor_type, actor_id, epoch) VALUES ($1, $2, 1)
                 ON CONFLICT DO NOTHING RETURNING epoch"
            ),
            get: format!(
                "SELECT value FROM {table} WHERE actor_type = $1 AND actor_id = $2 AND key = $3
                 AND (expires_at_ms IS NULL OR expires_at_ms > $4)"
            ),
            lock_fence: format!(
                "SELECT epoch FROM {fences} WHERE actor_type = $1 AND actor_id = $2 FOR UPDATE"
            ),
            hand_off: format!(
                "UPDATE {fences} SET handed_off_timers = $3 WHERE actor_type = $1 AND actor_id = $2"
            ),
        }
    }
}

pub struct PostgresStore {
    connections: Arc<Pooled>,
    batcher: Batcher,
}

/// The pool, and the schema once created.
struct Pooled {
    pool: Pool,
    statements: Statements,
    schema_ready: OnceCell<()>,
}

impl Pooled {
    /// A pooled connection, with the schema in place.
    async fn client(&self) -> Result<deadpool_postgres::Object, StateError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        self.schema_ready
            .get_or_try_init(|| async {
                // Serializes schema creation across hosts (concurrent CREATE TABLE IF NOT
                // EXISTS can fail on the catalog's unique index).
                let sql = format!(
                    "BEGIN; SELECT pg_advisory_xact_lock(7478413021); {} COMMIT;",
                    self.statements.schema
                );
                client.batch_execute(&sql).await.map_err(db_error)
            })
            .await?;
        Ok(client)
    }
}

impl Connections for Pooled {
    fn connection(&self) -> BoxFuture<'_, Result<deadpool_postgres::Object, StateError>> {
        self.client().boxed()
    }
}

impl PostgresStore {
    /// Builds the pool; connects lazily, so a host starts while the server is down.
    pub fn new(config: PostgresConfig) -> Result<PostgresStore, StateError> {
        validate_table_name(&config.table_name)?;
        let (pg_config, tls) = parse_with_tls(&config.connection_string)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match client_config(&tls)? {
            None => Manager::from_config(pg_config, NoTls, manager_config),
            Some(tls) => {
                Manager::from_config(pg_config, MakeRustlsConnect::new(tls), manager_config)
            }
        };
        let timeout = Some(Duration::from_millis(STORE_OPERATION_TIMEOUT_MS));
        let pool = Pool::builder(manager)
            .max_size(MAX_POOL_CONNECTIONS)
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(|e| StateError::Config(format!("postgresql pool: {e}")))?;
        let connections = Arc::new(Pooled {
            pool,
            statements: Statements::new(&config.table_name),
            schema_ready: OnceCell::new(),
        });
        let batcher = Batcher::new(
            connections.clone(),
            &config.table_name,
            Duration::from_millis(STORE_OPERATION_TIMEOUT_MS),
        );
        Ok(PostgresStore {
            connections,
            batcher,
        })
    }

    /// A pooled connection, with the schema in place.
    async fn client(&self) -> Result<deadpool_postgres::Object, StateError> {
        self.connections.client().await
    }

    /// Bounds `operation` by [`STORE_OPERATION_TIMEOUT_MS`].
    async fn bounded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, StateError>>,
    ) -> Result<T, StateError> {
        tokio::time::timeout(Duration::from_millis(STORE_OPERATION_TIMEOUT_MS), operation)
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(format!(
                    "no answer within {STORE_OPERATION_TIMEOUT_MS} ms"
                )))
            })
    }

    /// Opens a transaction on `client` and checks that `epoch` is the actor's latest claim,
    /// holding the fence row's lock until the transaction ends. On a mismatch nothing is
    /// written (dropping the transaction rolls it back).
    async fn begin_fenced<'c>(
        &self,
        client: &'c mut deadpool_postgres::Object,
        actor: &ActorKey,
        epoch: Epoch,
    ) -> Result<deadpool_postgres::Transaction<'c>, StateError> {
        let transaction = client.transaction().await.map_err(db_error)?;
        let row = transaction
            .query_opt(
                &self.connections.statements.lock_fence,
                &[&actor.actor_type, &actor.actor_id],
            )
            .await
            .map_err(db_error)?;
        let current = row.map(|r| r.get::<_, i64>(0));
        if current != Some(epoch.0 as i64) {
            return Err(StateError::Fenced(actor.clone()));
        }
        Ok(transaction)
    }
}

impl StateStore for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StateError>> {
        async move {
            self.bounded(async {
                let client = self.client().await?;
                client.simple_query("SELECT 1").await.map_err(db_error)?;
                Ok(())
            })
            .await
        }
        .boxed()
    }

    fn claim(&self, actor: &ActorKey) -> BoxFuture<'_, Result<Claim, StateError>> {
        let actor = actor.clone();
        async move {
            self.bounded(async {
                let client = self.client().await?;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                    [&actor.actor_type, &actor.actor_id];
                // The row exists after the first claim; a lost race to insert it retries
                // the update once.
                for _ in 0..2 {
                    if let Some(row) = client
                        .query_opt(&self.connections.statements.claim_update, &params)
                        .await
                        .map_err(db_error)?
                    {
                        let epoch: i64 = row.get(0);
                        let timers: Option<Vec<u8>> = row.get(1);
                        return Ok(Claim {
                            epoch: Epoch(epoch as u64),
                            handed_off_timers: timers.map(Bytes::from),
                        });
                    }
                    if let Some(row) = client
                        .query_opt(&self.connections.statements.claim_insert, &params)
                        .await
                        .map_err(db_error)?
                    {
                        let epoch: i64 = row.get(0);
                        return Ok(Claim {
                            epoch: Epoch(epoch as u64),
                            handed_off_timers: None,
                        });
                    }
                }
                Err(unavailable(format!(
                    "could not claim actor {actor}: concurrent claims kept racing"
                )))
            })
            .await
        }
        .boxed()
    }

    fn get<'a>(
        &'a self,
        actor: &'a ActorKey,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Bytes>, StateError>> {
        async move {
            self.bounded(async {
                let client = self.client().await?;
                let now = now_ms() as i64;
                let row = client
                    .query_opt(
                        &self.connections.statements.get,
                        &[&actor.actor_type, &actor.actor_id, &key, &now],
                    )
                    .await
                    .map_err(db_error)?;
                Ok(row.map(|r| Bytes::from(r.get::<_, Vec<u8>>(0))))
            })
            .await
        }
        .boxed()
    }

    fn transact<'a>(
        &'a self,
        actor: &'a ActorKey,
        epoch: Epoch,
        operations: &'a [StateOp],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        self.batcher
            .transact(
                actor,
                epoch,
                operations,
                Duration::from_millis(STORE_OPERATION_TIMEOUT_MS),
            )
            .boxed()
    }

    fn hand_off_timers<'a>(
        &'a self,
        actor: &'a ActorKey,
        epoch: Epoch,
        timers: Bytes,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        async move {
            self.bounded(async {
                let mut client = self.client().await?;
                let transaction = self.begin_fenced(&mut client, actor, epoch).await?;
                transaction
                    .execute(
                        &self.connections.statements.hand_off,
                        &[&actor.actor_type, &actor.actor_id, &timers.as_ref()],
                    )
                    .await
                    .map_err(db_error)?;
                transaction.commit().await.map_err(db_error)
            })
            .await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_in_dapr_and_libpq_forms() {
        let dapr = parse_connection_string(
            "host=localhost user=postgres password=example port=5432 connect_timeout=10 database=my_dapr",
        )
        .unwrap();
        assert_eq!(dapr.get_dbname(), Some("my_dapr"));
        assert_eq!(dapr.get_connect_timeout(), Some(&Duration::from_secs(10)));
        let url = parse_connection_string("postgres://u:p@127.0.0.1:5433/db").unwrap();
        assert_eq!(url.get_ports(), &[5433]);
        assert_eq!(
            parse_connection_string("host=h")
                .unwrap()
                .get_connect_timeout(),
            Some(&Duration::from_millis(CONNECT_TIMEOUT_MS))
        );
        assert!(parse_connection_string("host=h bogus_option=1").is_err());
    }

    #[test]
    fn table_names_are_plain_identifiers() {
        for good in ["rookery_state", "_t", "t1"] {
            assert!(validate_table_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1t", "state; DROP TABLE x", "Upper", &"t".repeat(60)] {
            assert!(validate_table_name(bad).is_err(), "{bad}");
        }
    }
}
