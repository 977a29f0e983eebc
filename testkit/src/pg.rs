//! Fresh PostgreSQL databases on the machine's server (127.0.0.1:5432, trust auth), one
//! per test, so tests run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};

/// The administrative connection (database `test`).
pub const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A new empty database named after `prefix`: its URL and name (drop it with [`drop_db`]).
pub async fn fresh_db(prefix: &str) -> (String, String) {
    use sqlx::Connection as _;
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let mut admin = sqlx::PgConnection::connect(ADMIN)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test.sh starts it)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    (format!("postgres://postgres@127.0.0.1:5432/{name}"), name)
}

/// Drop the database `name` (connections to it are ended).
pub async fn drop_db(name: &str) {
    use sqlx::Connection as _;
    if let Ok(mut admin) = sqlx::PgConnection::connect(ADMIN).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}
