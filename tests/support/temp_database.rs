//! A PostgreSQL database of its own for one test, on the shared server (tests that run several
//! `reflex run` replicas on one store).

use super::{HINT, PRECHECK_TIMEOUT, database_url, unique_name};

/// A PostgreSQL database of its own for one test, created on the server of `DATABASE_URL` and
/// dropped by [`TempDatabase::drop_now`] (replicas sharing a store need a real server, and a
/// fresh database keeps their rows apart from every other test's).
pub struct TempDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl TempDatabase {
    /// Creates `<prefix>_<12 hex digits>`; fails the test when PostgreSQL does not answer.
    pub async fn create(prefix: &str) -> TempDatabase {
        let admin_url = database_url();
        let name = unique_name(prefix).replace('-', "_");
        let (base, query) = admin_url
            .split_once('?')
            .map_or((admin_url.as_str(), ""), |(b, q)| (b, q));
        let authority = base.find("://").map_or(0, |i| i + 3);
        let server = base[authority..]
            .find('/')
            .map_or(base, |slash| &base[..authority + slash]);
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let url = format!("{server}/{name}{query}");
        Self::admin_sql(&admin_url, &format!("CREATE DATABASE {name}")).await;
        TempDatabase {
            admin_url,
            name,
            url,
        }
    }

    /// Drops the database, disconnecting whoever is still connected.
    pub async fn drop_now(self) {
        Self::admin_sql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }

    async fn admin_sql(admin_url: &str, sql: &str) {
        use sqlx::Connection;
        let mut admin =
            tokio::time::timeout(PRECHECK_TIMEOUT, sqlx::PgConnection::connect(admin_url))
                .await
                .unwrap_or_else(|_| panic!("PostgreSQL at {admin_url} did not answer; {HINT}"))
                .unwrap_or_else(|err| {
                    panic!("cannot connect to PostgreSQL at {admin_url}: {err}; {HINT}")
                });
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|err| panic!("`{sql}` failed: {err}"));
    }
}
