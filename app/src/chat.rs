//! Chat tokens: the HS256 JWT the chat server verifies (`sub`, `name`, `role`, `room`,
//! `exp`). One room per channel (`live:<slug>`: chat room names have no `/`); the channel's owner is its broadcaster,
//! admins are moderators, everybody else a viewer. The `room` claim scopes a moderating
//! role to that room.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::App;
use crate::accounts::{Role, User};
use crate::error::{AppError, Result};

/// Ask for a chat token.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatTokenRequest {
    /// The channel whose chat to join.
    #[schema(max_length = 32)]
    pub channel: String,
}

/// A chat token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatToken {
    /// The JWT: Socket.IO `auth: { token }`.
    pub token: String,
    /// The room to join.
    pub room: String,
    /// `viewer`, `moderator` or `broadcaster`.
    pub role: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// Where the chat is (Socket.IO URL), when configured.
    pub url: Option<String>,
}

/// Sign `claims` as an HS256 JWT.
pub(crate) fn sign(claims: &serde_json::Value, secret: &[u8]) -> String {
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let head = enc(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = enc(claims.to_string().as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(head.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("{head}.{body}.{}", enc(&mac.finalize().into_bytes()))
}

impl App {
    /// A chat token for `user` in the room of `channel`.
    pub async fn chat_token(&self, user: &User, channel: &str) -> Result<ChatToken> {
        let Some(secret) = self
            .config()
            .chat_secret
            .as_deref()
            .filter(|s| !s.is_empty())
        else {
            return Err(AppError::Unavailable(std::time::Duration::from_secs(60)));
        };
        let c = self.channel_record(channel).await?;
        let role = if user.id == c.owner_id {
            "broadcaster"
        } else if user.role == Role::Admin {
            "moderator"
        } else {
            "viewer"
        };
        let room = format!("{}:{}", self.config().live_app, c.channel.slug);
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + self.config().chat_token_ttl.as_secs().max(60);
        let token = sign(
            &serde_json::json!({
                "sub": user.id, "name": user.username, "role": role, "room": room, "exp": exp,
            }),
            secret.as_bytes(),
        );
        Ok(ChatToken {
            token,
            room,
            role: role.to_string(),
            expires_at: exp,
            url: self.config().chat_url.clone(),
        })
    }
}
