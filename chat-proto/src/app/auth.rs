//! HS256 JSON Web Tokens from the CONNECT auth payload (`{"token": "…"}`): signature,
//! algorithm and expiry checked (time injected), claims read into a chat [`Identity`].
//!
//! Claims: `sub` (user id, required), `name` (display name, defaults to `sub`), `role`
//! (`viewer` default, `moderator`, `broadcaster`), `room` (optional: the one room a
//! moderating role applies to), `exp` (seconds since the Unix epoch,
//! **required**: a token that never expires is refused), `nbf` (optional). Both are checked
//! with [`LEEWAY_SECS`] of tolerance for clocks that disagree a little.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Longest token accepted.
pub const MAX_TOKEN: usize = 4096;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// What a user may do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads only (anonymous viewers, when allowed).
    Anonymous,
    /// Reads and writes.
    Viewer,
    /// Also deletes messages, times out and bans users, sets slow mode.
    Moderator,
    /// The stream's owner: everything a moderator can.
    Broadcaster,
}

impl Role {
    /// The role's name in tokens and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Anonymous => "anonymous",
            Role::Viewer => "viewer",
            Role::Moderator => "moderator",
            Role::Broadcaster => "broadcaster",
        }
    }

    /// The role named `s` (as [`as_str`](Self::as_str) writes it).
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "anonymous" => Role::Anonymous,
            "viewer" => Role::Viewer,
            "moderator" => Role::Moderator,
            "broadcaster" => Role::Broadcaster,
            _ => return None,
        })
    }

    /// May moderate.
    pub fn moderates(self) -> bool {
        self >= Role::Moderator
    }
}

/// Who is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The one room a moderating role applies to (the token's `room` claim); in other
    /// rooms the user is a viewer. `None`: every room.
    pub room: Option<String>,
}

impl Identity {
    /// This identity as it acts in `room`: a moderating role scoped to another room is
    /// a viewer's here.
    #[must_use]
    pub fn in_room(&self, room: &str) -> Identity {
        let mut me = self.clone();
        if me.role.moderates() && me.room.as_deref().is_some_and(|r| r != room) {
            me.role = Role::Viewer;
        }
        me
    }
}

/// Why a token is refused (the CONNECT_ERROR message says which).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts of JSON, or too long.
    #[error("malformed token")]
    Malformed,
    /// Not HS256.
    #[error("unsupported token algorithm")]
    Algorithm,
    /// The signature does not match.
    #[error("bad token signature")]
    Signature,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// No `exp` claim: tokens must expire.
    #[error("token has no expiry (exp)")]
    MissingExpiry,
    /// Before `nbf`.
    #[error("token not yet valid")]
    NotYetValid,
    /// No usable `sub`, or an unknown role.
    #[error("token claims are invalid")]
    Claims,
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    // base64url without padding, as JWTs are written.
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// Verify `token` with `secret` at `now_secs` (Unix time).
pub fn verify(token: &str, secret: &[u8], now_secs: u64) -> Result<Identity, TokenError> {
    if token.len() > MAX_TOKEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Value = b64url(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(TokenError::Algorithm);
    }
    let sig = b64url(sig).ok_or(TokenError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| TokenError::Signature)?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
    let claims: Value = b64url(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    let time = |k: &str| -> Result<Option<u64>, TokenError> {
        match claims.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .map(|x| {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked
                    let s = x.min(1e15) as u64;
                    Some(s)
                })
                .ok_or(TokenError::Claims),
        }
    };
    let exp = time("exp")?.ok_or(TokenError::MissingExpiry)?;
    if now_secs >= exp.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    if time("nbf")?.is_some_and(|nbf| now_secs.saturating_add(LEEWAY_SECS) < nbf) {
        return Err(TokenError::NotYetValid);
    }
    let id = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or(TokenError::Claims)?
        .to_string();
    let name = claims
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(|| id.clone(), |n| n.chars().take(64).collect());
    let role = match claims.get("role").and_then(Value::as_str) {
        None | Some("viewer") => Role::Viewer,
        Some("moderator") => Role::Moderator,
        Some("broadcaster") => Role::Broadcaster,
        Some(_) => return Err(TokenError::Claims),
    };
    let room = match claims.get("room") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if !r.is_empty() && r.len() <= 128 => Some(r.clone()),
        Some(_) => return Err(TokenError::Claims),
    };
    Ok(Identity {
        id,
        name,
        role,
        room,
    })
}

/// Sign `claims` with `secret` (for tests and tools issuing tokens).
pub fn sign(claims: &Value, secret: &[u8]) -> String {
    let enc = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let head = enc(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = enc(claims.to_string().as_bytes());
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(head.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("{head}.{body}.{}", enc(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_known_token_from_jwt_io() {
        // jwt.io's default HS256 example (secret "your-256-bit-secret"), signed elsewhere:
        // its signature checks out, but it has no `exp`, so it is refused.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        assert_eq!(
            verify(token, b"your-256-bit-secret", 1_700_000_000),
            Err(TokenError::MissingExpiry)
        );
        assert_eq!(verify(token, b"other", 0), Err(TokenError::Signature));
    }

    #[test]
    fn a_moderating_role_scoped_to_a_room_is_a_viewer_elsewhere() {
        let t = sign(
            &json!({"sub": "u1", "role": "broadcaster", "room": "live/mine", "exp": 2_000_000_000u64}),
            b"k",
        );
        let me = verify(&t, b"k", 1_700_000_000).unwrap();
        assert_eq!(me.room.as_deref(), Some("live/mine"));
        assert_eq!(me.in_room("live/mine").role, Role::Broadcaster);
        assert_eq!(me.in_room("live/other").role, Role::Viewer);
        // Without the claim, the role holds everywhere (tokens of other issuers).
        let t = sign(
            &json!({"sub": "m", "role": "moderator", "exp": 2_000_000_000u64}),
            b"k",
        );
        assert_eq!(
            verify(&t, b"k", 1_700_000_000).unwrap().in_room("any").role,
            Role::Moderator
        );
        // A malformed room claim is refused.
        let t = sign(
            &json!({"sub": "m", "room": 5, "exp": 2_000_000_000u64}),
            b"k",
        );
        assert_eq!(verify(&t, b"k", 1_700_000_000), Err(TokenError::Claims));
    }

    #[test]
    fn claims_expiry_and_tampering() {
        let secret = b"s3cret";
        let t = sign(
            &json!({"sub": "u1", "name": "Mod", "role": "moderator", "exp": 2000, "nbf": 1000}),
            secret,
        );
        let id = verify(&t, secret, 1500).unwrap();
        assert_eq!((id.role, id.name.as_str()), (Role::Moderator, "Mod"));
        // A little clock skew is tolerated, more is not.
        assert!(verify(&t, secret, 2000 + LEEWAY_SECS - 1).is_ok());
        assert_eq!(
            verify(&t, secret, 2000 + LEEWAY_SECS),
            Err(TokenError::Expired)
        );
        assert!(verify(&t, secret, 1000 - LEEWAY_SECS).is_ok());
        assert_eq!(
            verify(&t, secret, 999 - LEEWAY_SECS),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            verify(&sign(&json!({"sub": "u1"}), secret), secret, 0),
            Err(TokenError::MissingExpiry)
        );
        let mut parts: Vec<String> = t.split('.').map(String::from).collect();
        parts[1] = sign(&json!({"sub": "u1", "role": "broadcaster"}), secret)
            .split('.')
            .nth(1)
            .unwrap()
            .to_string();
        assert_eq!(
            verify(&parts.join("."), secret, 1500),
            Err(TokenError::Signature)
        );
        let none = format!("{}.{}.", "eyJhbGciOiJub25lIn0", parts[1]);
        assert_eq!(verify(&none, secret, 1500), Err(TokenError::Algorithm));
        assert_eq!(
            verify(
                &sign(&json!({"role": "viewer", "exp": 10}), secret),
                secret,
                0
            ),
            Err(TokenError::Claims)
        );
        assert_eq!(
            verify(
                &sign(&json!({"sub": "x", "role": "admin", "exp": 10}), secret),
                secret,
                0
            ),
            Err(TokenError::Claims)
        );
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"x".repeat(5000)] {
            assert!(verify(bad, secret, 0).is_err(), "{bad}");
        }
    }
}
