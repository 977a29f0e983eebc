//! Accounts and sessions: sign-up rules, argon2id password hashes, session tokens stored
//! only as hashes, roles.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use utoipa::ToSchema;

use crate::App;
use crate::error::{AppError, Result};
use crate::ids::{new_id, new_secret, now_ms, secret_hash};

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches, chats, uploads nothing until it has a channel.
    Viewer,
    /// Owns channels (becomes one with its first channel).
    Creator,
    /// Everything, on every resource (the first account, or promoted by an admin).
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Creator => "creator",
            Role::Admin => "admin",
        }
    }

    /// The role stored as `s`.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "creator" => Role::Creator,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// A signed-in account, as the account itself sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Account id.
    pub id: String,
    /// Username as chosen (unique regardless of case).
    pub username: String,
    /// Email address (shown only to the account itself).
    pub email: String,
    /// Role.
    pub role: Role,
    /// Created, milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// A new session: the token is shown once, here, and stored only as a hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewSession {
    /// Send as `Authorization: Bearer <token>` (the web app gets it as a cookie too).
    pub token: String,
    /// When it expires, milliseconds since the Unix epoch.
    pub expires_at: i64,
    /// Who it belongs to.
    pub user: User,
}

/// Sign-up input.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    /// 3–32 characters: letters, digits and `_`, starting with a letter or digit.
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9][A-Za-z0-9_]{2,31}$"
    )]
    pub username: String,
    /// An email address (at most 254 characters).
    #[schema(max_length = 254)]
    pub email: String,
    /// 8–128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

/// Sign-in input.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// Username or email address.
    #[schema(max_length = 254)]
    pub login: String,
    /// The password.
    #[schema(max_length = 128)]
    pub password: String,
}

/// Longest password accepted (argon2 hashes anything, but the work must stay bounded).
pub const MAX_PASSWORD: usize = 128;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

pub(crate) fn check_username(u: &str) -> Result<()> {
    let ok_len = (3..=32).contains(&u.len());
    let mut chars = u.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok_len && ok_first && ok_rest {
        Ok(())
    } else {
        Err(AppError::invalid(
            "username",
            "3–32 characters: letters, digits and _, starting with a letter or digit",
        ))
    }
}

pub(crate) fn check_email(e: &str) -> Result<()> {
    let bad = || AppError::invalid("email", "not an email address");
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || domain.len() < 3 || !domain.contains('.') {
        return Err(bad());
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains('@') {
        return Err(bad());
    }
    Ok(())
}

pub(crate) fn check_password(p: &str) -> Result<()> {
    let n = p.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(AppError::invalid("password", "8–128 characters"));
    }
    Ok(())
}

async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| AppError::Internal(e.to_string()))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| AppError::Internal(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(e.to_string()))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
}

/// A hash of a password nobody has: verified when the account does not exist, so that
/// an unknown login takes as long as a wrong password.
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Ij3Yg5bnkjSB7QuEZvYCjDeSfXCPGs3VOYHxYNaHLjg";

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

fn user_from(row: &sqlx::any::AnyRow) -> Result<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_at: row.try_get("created_at")?,
    })
}

impl App {
    /// Create an account (the first one is an admin) and sign it in.
    pub async fn sign_up(&self, input: SignUp) -> Result<NewSession> {
        check_username(&input.username)?;
        check_email(&input.email)?;
        check_password(&input.password)?;
        let hash = hash_password(input.password).await?;
        let id = new_id();
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO app_users (id, username, username_key, email, email_key, password_hash, role, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, \
                CASE WHEN EXISTS (SELECT 1 FROM app_users) THEN 'viewer' ELSE 'admin' END, $7",
        )
        .bind(&id)
        .bind(&input.username)
        .bind(input.username.to_ascii_lowercase())
        .bind(&input.email)
        .bind(input.email.to_lowercase())
        .bind(&hash)
        .bind(now)
        .execute(&self.db().pool)
        .await;
        match r {
            Ok(_) => {}
            Err(e) => {
                return Err(match AppError::from(e) {
                    AppError::Conflict(_) => {
                        AppError::Conflict("that username or email is already taken".into())
                    }
                    other => other,
                });
            }
        }
        let user = self
            .user_by_id(&id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        tracing::info!(user = %user.id, username = %user.username, role = user.role.as_str(), "account created");
        self.new_session(user).await
    }

    /// Check a username-or-email and password; a new session when they match.
    pub async fn sign_in(&self, input: SignIn) -> Result<NewSession> {
        if input.login.len() > 254 || input.password.len() > MAX_PASSWORD * 4 {
            return Err(AppError::BadCredentials);
        }
        let key = input.login.to_lowercase();
        let row = sqlx::query(
            "SELECT id, username, email, role, created_at, password_hash FROM app_users \
             WHERE username_key = $1 OR email_key = $1",
        )
        .bind(&key)
        .fetch_optional(&self.db().pool)
        .await?;
        let Some(row) = row else {
            verify_password(input.password, DECOY.to_string()).await;
            return Err(AppError::BadCredentials);
        };
        let hash: String = row.try_get("password_hash")?;
        if !verify_password(input.password, hash).await {
            return Err(AppError::BadCredentials);
        }
        let user = user_from(&row)?;
        // Expired sessions of this account go now.
        sqlx::query("DELETE FROM app_sessions WHERE user_id = $1 AND expires_at <= $2")
            .bind(&user.id)
            .bind(now_ms())
            .execute(&self.db().pool)
            .await?;
        self.new_session(user).await
    }

    async fn new_session(&self, user: User) -> Result<NewSession> {
        let token = new_secret("vps_");
        let now = now_ms();
        let ttl = i64::try_from(self.config().session_ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let expires_at = now.saturating_add(ttl);
        sqlx::query(
            "INSERT INTO app_sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(secret_hash(&token))
        .bind(&user.id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.db().pool)
        .await?;
        Ok(NewSession {
            token,
            expires_at,
            user,
        })
    }

    /// The account a session token belongs to, if the session is valid.
    pub async fn session_user(&self, token: &str) -> Result<Option<User>> {
        if token.len() > 128 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT u.id, u.username, u.email, u.role, u.created_at FROM app_sessions s \
             JOIN app_users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(secret_hash(token))
        .bind(now_ms())
        .fetch_optional(&self.db().pool)
        .await?;
        row.as_ref().map(user_from).transpose()
    }

    /// End one session.
    pub async fn sign_out(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM app_sessions WHERE token_hash = $1")
            .bind(secret_hash(token))
            .execute(&self.db().pool)
            .await?;
        Ok(())
    }

    /// End every session of `user` ("sign out everywhere").
    pub async fn sign_out_everywhere(&self, user: &User) -> Result<u64> {
        let r = sqlx::query("DELETE FROM app_sessions WHERE user_id = $1")
            .bind(&user.id)
            .execute(&self.db().pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// The account `id`.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT id, username, email, role, created_at FROM app_users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db().pool)
        .await?;
        row.as_ref().map(user_from).transpose()
    }

    /// Give the account named `username` the role `role` (the admin command).
    pub async fn set_role(&self, username: &str, role: Role) -> Result<User> {
        let r = sqlx::query("UPDATE app_users SET role = $1 WHERE username_key = $2")
            .bind(role.as_str())
            .bind(username.to_ascii_lowercase())
            .execute(&self.db().pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(AppError::NotFound("user"));
        }
        let row = sqlx::query(
            "SELECT id, username, email, role, created_at FROM app_users WHERE username_key = $1",
        )
        .bind(username.to_ascii_lowercase())
        .fetch_one(&self.db().pool)
        .await?;
        let user = user_from(&row)?;
        tracing::info!(user = %user.id, role = role.as_str(), "role changed");
        Ok(user)
    }

    /// Delete expired sessions (run now and then).
    pub async fn sweep_sessions(&self) -> Result<u64> {
        let r = sqlx::query("DELETE FROM app_sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&self.db().pool)
            .await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_rules() {
        assert!(check_username("ab").is_err());
        assert!(check_username("_abc").is_err());
        assert!(check_username("a".repeat(33).as_str()).is_err());
        assert!(check_username("한글이름").is_err());
        assert!(check_username("Kim_99").is_ok());
        assert!(check_email("a@b.co").is_ok());
        assert!(check_email("a@b").is_err());
        assert!(check_email("a b@c.de").is_err());
        assert!(check_email("@c.de").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("비밀번호비밀번호").is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
    }

    #[test]
    fn the_decoy_hash_parses() {
        assert!(PasswordHash::new(DECOY).is_ok());
    }
}
