//! The database: one query layer over SQLite (embedded default) and PostgreSQL through
//! sqlx's `Any` driver. Every statement in this crate is written once, in the SQL both
//! engines share (`$1` placeholders, BIGINT milliseconds, TEXT ids), and the same
//! migrations create the schema on both.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor as _};

use crate::error::{AppError, Result};

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (WAL journal).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A connection pool with the schema applied. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connect to `url` — `sqlite://PATH` (created if missing) or `postgres://…` — and
    /// apply the migrations.
    pub async fn open(url: &str) -> Result<Db> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(AppError::invalid(
                "db",
                format!("{url:?}: use sqlite://PATH or postgres://USER@HOST/DB"),
            ));
        };
        let mut opts = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Duration::from_secs(300));
        let url = match backend {
            Backend::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or_default();
                if let Some(dir) = Path::new(path).parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        AppError::Internal(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                opts = opts.max_connections(8).after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL: readers never wait for the writer; NORMAL is durable at
                        // every checkpoint and never corrupts on a crash.
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        Ok(())
                    })
                });
                format!("sqlite://{path}?mode=rwc")
            }
            Backend::Postgres => {
                opts = opts.max_connections(16);
                url.to_string()
            }
        };
        let pool = opts
            .connect(&url)
            .await
            .map_err(|e| match AppError::from(e) {
                AppError::Internal(m) => {
                    AppError::Internal(format!("cannot open the database: {m}"))
                }
                other => other,
            })?;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        let mut migrator = sqlx::migrate!("./migrations");
        // Other crates (the PostgreSQL job queue) keep their migrations in the same table.
        migrator.set_ignore_missing(true);
        migrator
            .run(&pool)
            .await
            .map_err(|e| AppError::Internal(format!("migrations: {e}")))?;
        Ok(Db { pool, backend })
    }

    /// The SQLite file under the storage root (`<root>/app/videopick.db`).
    pub async fn open_in(root: &Path) -> Result<Db> {
        Db::open(&format!(
            "sqlite://{}",
            root.join("app").join("videopick.db").display()
        ))
        .await
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for queries of the embedding application.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Close the pool (waits for connections in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
