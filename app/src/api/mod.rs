//! The REST API under `/api/v1`: JSON in and out, cursor pagination, RFC 9457 problem
//! answers with request ids, sessions by `Authorization: Bearer` or the `vp_session`
//! cookie (cookie-authenticated writes must come from an allowed `Origin`), and the
//! OpenAPI 3.1 document at `/api/v1/openapi.json`, generated from these handlers.

mod problem;

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToSchema};

use problem::reject;
pub use problem::{ApiError, ApiResult, Problem};

use crate::App;
use crate::accounts::{NewSession, Role, SignIn, SignUp, User};
use crate::channels::{
    Channel, ChannelCreated, ChannelPatch, ChannelSettings, NewChannel, StreamKey,
};
use crate::chat::{ChatToken, ChatTokenRequest};
use crate::error::AppError;
use crate::page::{Page, PageQuery};
use crate::videos::{Video, VideoPatch};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "vp_session";
/// Largest request body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

/// The client's address, as the embedding server resolved it (trusted proxies applied);
/// put it in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The API as an axum router (paths start with `/api/v1`; anything else under `/api`
/// is a problem 404).
pub fn router(app: App) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/site", get(site))
        .route("/api/v1/auth/signup", post(sign_up))
        .route("/api/v1/auth/signin", post(sign_in))
        .route("/api/v1/auth/signout", post(sign_out))
        .route("/api/v1/auth/signout-all", post(sign_out_all))
        .route("/api/v1/auth/session", get(session))
        .route("/api/v1/me", get(me))
        .route("/api/v1/me/channels", get(my_channels))
        .route("/api/v1/me/videos", get(my_videos))
        .route("/api/v1/channels", post(create_channel))
        .route(
            "/api/v1/channels/{slug}",
            get(channel).patch(update_channel),
        )
        .route("/api/v1/channels/{slug}/settings", get(channel_settings))
        .route("/api/v1/channels/{slug}/key", post(rotate_key))
        .route("/api/v1/channels/{slug}/videos", get(channel_videos))
        .route("/api/v1/live", get(live_now))
        .route("/api/v1/videos", get(latest_videos))
        .route(
            "/api/v1/videos/{id}",
            get(video).patch(update_video).delete(delete_video),
        )
        .route("/api/v1/videos/{id}/views", post(count_view))
        .route("/api/v1/chat/token", post(chat_token))
        .route("/api/v1/admin/users/{username}/role", put(set_role))
        .route("/api/v1/hooks/auth", post(hook_auth))
        .route("/api/v1/hooks/events", post(hook_events))
        .route("/api/v1/hooks/tus", post(hook_tus))
        .route("/api/v1/hooks/media", post(hook_media))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(request_context))
        .with_state(app)
}

async fn not_found(method: Method) -> ApiError {
    let _ = method;
    ApiError(AppError::NotFound("resource"))
}

/// Request ids (an incoming sane `X-Request-Id` is kept), problem bodies completed with
/// the id and path, internal errors logged, `Cache-Control: no-store` on every answer.
async fn request_context(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| crate::ids::random(9), str::to_string);
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let mut resp = next.run(req).await;
    if let Some(err) = resp.extensions_mut().remove::<AppError>()
        && let AppError::Internal(why) = &err
    {
        tracing::error!(request_id = %id, %method, %path, error = %why, "api: internal error");
    }
    if let Some(mut p) = resp.extensions_mut().remove::<Problem>() {
        p.request_id = Some(id.clone());
        p.instance = Some(path);
        *resp.body_mut() = axum::body::Body::from(serde_json::to_vec(&p).unwrap_or_default());
        resp.headers_mut().remove(header::CONTENT_LENGTH);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// A JSON body; a bad one is a problem 400 (413 when too large).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<App> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &App) -> Result<Self, Response> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rej) => Err(if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                reject(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    format!("the body may be at most {MAX_BODY} bytes"),
                )
            } else {
                reject(StatusCode::BAD_REQUEST, "invalid", rej.body_text())
            }),
        }
    }
}

/// Query parameters; bad ones are a problem 400.
pub struct QueryArgs<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<App> for QueryArgs<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Self, Response> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| QueryArgs(v))
            .map_err(|rej| reject(StatusCode::BAD_REQUEST, "invalid", rej.body_text()))
    }
}

/// One path parameter; an undecodable one is a problem 404.
pub struct PathArg(pub String);

impl FromRequestParts<App> for PathArg {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Self, Response> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathArg(v))
            .map_err(|_| ApiError(AppError::NotFound("resource")).into_response())
    }
}

/// Who is calling: a signed-in account or nobody.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account, when signed in.
    pub user: Option<User>,
    /// The session token used.
    pub token: Option<String>,
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == SESSION_COOKIE && !v.is_empty()).then(|| v.to_string())
        })
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Whether a browser request's `Origin` is the API's own or an allowed one.
fn same_or_allowed_origin(app: &App, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Fetch metadata, when the browser sends it without an Origin.
        return matches!(
            headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
            Some("same-origin" | "none")
        );
    };
    if app.config().allowed_origins.iter().any(|o| o == origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// Who sends a request with `method` and `headers`: the account of its bearer token or
/// session cookie, if any. A wrong or expired bearer token is an error (not anonymity);
/// a cookie-authenticated change from a foreign `Origin` is refused (CSRF). For the
/// media side's routes (uploads, private video files) as much as for the API.
pub async fn session_from_headers(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(Option<User>, Option<String>), AppError> {
    let (token, by_cookie) = match bearer_token(headers) {
        Some(t) => (Some(t), false),
        None => (cookie_token(headers), true),
    };
    let Some(token) = token else {
        return Ok((None, None));
    };
    let unsafe_method = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if by_cookie && unsafe_method && !same_or_allowed_origin(app, headers) {
        return Err(AppError::Forbidden(
            "cross-site request refused (Origin not allowed)".into(),
        ));
    }
    let user = app.session_user(&token).await?;
    if user.is_none() && !by_cookie {
        return Err(AppError::Unauthenticated);
    }
    Ok((user, Some(token)))
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let (user, token) = session_from_headers(app, &parts.method, &parts.headers).await?;
        Ok(Caller { user, token })
    }
}

/// A signed-in caller (401 otherwise).
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The account.
    pub user: User,
    /// Its session token.
    pub token: String,
}

impl FromRequestParts<App> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let c = Caller::from_request_parts(parts, app).await?;
        match (c.user, c.token) {
            (Some(user), Some(token)) => Ok(SignedIn { user, token }),
            _ => Err(ApiError(AppError::Unauthenticated)),
        }
    }
}

fn client_ip(parts_ext: &axum::http::Extensions) -> String {
    parts_ext
        .get::<ClientAddr>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.to_string())
}

fn session_cookie(app: &App, s: &NewSession) -> HeaderValue {
    let secure = if app.config().cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let max_age = app.config().session_ttl.as_secs();
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        s.token
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn clear_cookie(app: &App) -> HeaderValue {
    let secure = if app.config().cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn login_csrf(app: &App, headers: &HeaderMap) -> ApiResult<()> {
    // A sign-in from another site's page would set our cookie (login CSRF).
    if headers.contains_key(header::ORIGIN) && !same_or_allowed_origin(app, headers) {
        return Err(ApiError(AppError::Forbidden(
            "cross-site request refused (Origin not allowed)".into(),
        )));
    }
    Ok(())
}

/// Create an account (the first one is an admin) and sign in.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "accounts", request_body = SignUp,
    responses(
        (status = 201, description = "Signed up and in; the session cookie is set too", body = NewSession),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username or email taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many sign-ups from this address", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn sign_up(
    State(app): State<App>,
    req_parts: RequestInfo,
    JsonBody(input): JsonBody<SignUp>,
) -> ApiResult<Response> {
    login_csrf(&app, &req_parts.headers)?;
    app.sign_up_limiter()
        .check(&format!("ip:{}", req_parts.ip), Instant::now())
        .map_err(|d| ApiError(AppError::RateLimited(d)))?;
    let s = app.sign_up(input).await?;
    let cookie = session_cookie(&app, &s);
    let mut r = (StatusCode::CREATED, Json(s)).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(r)
}

/// Headers and client address of a request.
pub struct RequestInfo {
    headers: HeaderMap,
    ip: String,
}

impl FromRequestParts<App> for RequestInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> Result<Self, Self::Rejection> {
        Ok(RequestInfo {
            headers: parts.headers.clone(),
            ip: client_ip(&parts.extensions),
        })
    }
}

/// Sign in with a username or email and the password.
#[utoipa::path(post, path = "/api/v1/auth/signin", tag = "accounts", request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; the session cookie is set too", body = NewSession),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong username or password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn sign_in(
    State(app): State<App>,
    req_parts: RequestInfo,
    JsonBody(input): JsonBody<SignIn>,
) -> ApiResult<Response> {
    login_csrf(&app, &req_parts.headers)?;
    let now = Instant::now();
    let limiter = app.sign_in_limiter();
    limiter
        .check(&format!("ip:{}", req_parts.ip), now)
        .and_then(|()| limiter.check(&format!("login:{}", input.login.to_lowercase()), now))
        .map_err(|d| ApiError(AppError::RateLimited(d)))?;
    let s = app.sign_in(input).await?;
    let cookie = session_cookie(&app, &s);
    let mut r = Json(s).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(r)
}

/// End this session.
#[utoipa::path(post, path = "/api/v1/auth/signout", tag = "accounts",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Signed out; the cookie is cleared"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn sign_out(State(app): State<App>, who: SignedIn) -> ApiResult<Response> {
    app.sign_out(&who.token).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(&app));
    Ok(r)
}

/// End every session of this account.
#[utoipa::path(post, path = "/api/v1/auth/signout-all", tag = "accounts",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Every session ended; the cookie is cleared"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn sign_out_all(State(app): State<App>, who: SignedIn) -> ApiResult<Response> {
    app.sign_out_everywhere(&who.user).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(&app));
    Ok(r)
}

/// Who is signed in, if anyone.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct SessionInfo {
    /// The account (none: signed out, or the session cookie expired).
    pub user: Option<User>,
}

/// The session of this browser: the account, or none (never 401: a page asks this on
/// every load).
#[utoipa::path(get, path = "/api/v1/auth/session", tag = "accounts",
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The account, or none", body = SessionInfo),
        (status = 401, description = "Bearer token invalid or expired", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn session(who: Caller) -> Json<SessionInfo> {
    Json(SessionInfo { user: who.user })
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn me(who: SignedIn) -> Json<User> {
    Json(who.user)
}

/// The channels of the signed-in account.
#[utoipa::path(get, path = "/api/v1/me/channels", tag = "channels",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Its channels", body = Vec<ChannelSettings>),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn my_channels(
    State(app): State<App>,
    who: SignedIn,
) -> ApiResult<Json<Vec<ChannelSettings>>> {
    Ok(Json(app.my_channels(&who.user).await?))
}

/// Every video of the signed-in account's channels, in any state.
#[utoipa::path(get, path = "/api/v1/me/videos", tag = "videos", params(PageQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A page of videos", body = Page<Video>),
        (status = 400, description = "Bad cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn my_videos(
    State(app): State<App>,
    who: SignedIn,
    QueryArgs(q): QueryArgs<PageQuery>,
) -> ApiResult<Json<Page<Video>>> {
    Ok(Json(app.my_videos(&who.user, &q).await?))
}

/// Create a channel; its stream key is in this answer only.
#[utoipa::path(post, path = "/api/v1/channels", tag = "channels", request_body = NewChannel,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Created, with its stream key (shown once)", body = ChannelCreated),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Slug taken, or too many channels", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_channel(
    State(app): State<App>,
    headers: HeaderMap,
    who: SignedIn,
    JsonBody(input): JsonBody<NewChannel>,
) -> ApiResult<(StatusCode, Json<ChannelCreated>)> {
    let mut created = app.create_channel(&who.user, input).await?;
    created.key.server = with_host(&created.key.server, &headers);
    Ok((StatusCode::CREATED, Json(created)))
}

/// A channel, with its live session while live.
#[utoipa::path(get, path = "/api/v1/channels/{slug}", tag = "channels",
    params(("slug" = String, Path, description = "Channel slug")),
    responses(
        (status = 200, description = "The channel", body = Channel),
        (status = 404, description = "No such channel", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn channel(State(app): State<App>, PathArg(slug): PathArg) -> ApiResult<Json<Channel>> {
    Ok(Json(app.channel(&slug).await?))
}

/// A channel's settings (its owner and admins).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/settings", tag = "channels",
    params(("slug" = String, Path, description = "Channel slug")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The settings", body = ChannelSettings),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not your channel", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such channel", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn channel_settings(
    State(app): State<App>,
    who: SignedIn,
    PathArg(slug): PathArg,
) -> ApiResult<Json<ChannelSettings>> {
    Ok(Json(app.channel_settings(&who.user, &slug).await?))
}

/// Change a channel (its owner and admins).
#[utoipa::path(patch, path = "/api/v1/channels/{slug}", tag = "channels", request_body = ChannelPatch,
    params(("slug" = String, Path, description = "Channel slug")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Changed", body = ChannelSettings),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not your channel, or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such channel", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_channel(
    State(app): State<App>,
    who: SignedIn,
    PathArg(slug): PathArg,
    JsonBody(patch): JsonBody<ChannelPatch>,
) -> ApiResult<Json<ChannelSettings>> {
    Ok(Json(app.update_channel(&who.user, &slug, patch).await?))
}

/// Key rotation options.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RotateQuery {
    /// Also end the publish in progress (default: it goes on until it stops).
    pub end_live: Option<bool>,
}

/// A new stream key (the old one stops working at once).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/key", tag = "channels",
    params(("slug" = String, Path, description = "Channel slug"), RotateQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The new key (shown once)", body = StreamKey),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not your channel, or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such channel", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn rotate_key(
    State(app): State<App>,
    headers: HeaderMap,
    who: SignedIn,
    PathArg(slug): PathArg,
    QueryArgs(q): QueryArgs<RotateQuery>,
) -> ApiResult<Json<StreamKey>> {
    let mut key = app
        .rotate_key(&who.user, &slug, q.end_live.unwrap_or(false))
        .await?;
    key.server = with_host(&key.server, &headers);
    Ok(Json(key))
}

/// A channel's videos: public and ready ones, or all of them for its owner.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/videos", tag = "videos",
    params(("slug" = String, Path, description = "Channel slug"), PageQuery),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A page of videos", body = Page<Video>),
        (status = 400, description = "Bad cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Bearer token invalid or expired", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such channel", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn channel_videos(
    State(app): State<App>,
    who: Caller,
    PathArg(slug): PathArg,
    QueryArgs(q): QueryArgs<PageQuery>,
) -> ApiResult<Json<Page<Video>>> {
    Ok(Json(
        app.channel_videos(who.user.as_ref(), &slug, &q).await?,
    ))
}

/// Channels live now, most viewers first (at most 500).
#[utoipa::path(get, path = "/api/v1/live", tag = "live",
    responses(
        (status = 200, description = "Live channels", body = Page<Channel>),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn live_now(State(app): State<App>) -> ApiResult<Json<Page<Channel>>> {
    Ok(Json(Page {
        items: app.live_now().await?,
        next: None,
    }))
}

/// Search and paging of the video list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VideoQuery {
    /// Only videos whose title contains this (at most 100 characters).
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// The `next` of the previous page.
    #[param(max_length = 64)]
    pub cursor: Option<String>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Public, ready videos, newest first; `q` searches titles.
#[utoipa::path(get, path = "/api/v1/videos", tag = "videos", params(VideoQuery),
    responses(
        (status = 200, description = "A page of videos", body = Page<Video>),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn latest_videos(
    State(app): State<App>,
    QueryArgs(q): QueryArgs<VideoQuery>,
) -> ApiResult<Json<Page<Video>>> {
    let page = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    };
    Ok(Json(app.latest_videos(q.q.as_deref(), &page).await?))
}

/// A video (a private one only for its owner and admins).
#[utoipa::path(get, path = "/api/v1/videos/{id}", tag = "videos",
    params(("id" = String, Path, description = "Video id")),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The video", body = Video),
        (status = 401, description = "Bearer token invalid or expired", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such video (or not yours to see)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn video(
    State(app): State<App>,
    who: Caller,
    PathArg(id): PathArg,
) -> ApiResult<Json<Video>> {
    Ok(Json(app.video(who.user.as_ref(), &id).await?))
}

/// Change a video's title, description or visibility.
#[utoipa::path(patch, path = "/api/v1/videos/{id}", tag = "videos", request_body = VideoPatch,
    params(("id" = String, Path, description = "Video id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Changed", body = Video),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not your video, or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such video", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_video(
    State(app): State<App>,
    who: SignedIn,
    PathArg(id): PathArg,
    JsonBody(patch): JsonBody<VideoPatch>,
) -> ApiResult<Json<Video>> {
    Ok(Json(app.update_video(&who.user, &id, patch).await?))
}

/// Delete a video: its processing stops and its files are removed.
#[utoipa::path(delete, path = "/api/v1/videos/{id}", tag = "videos",
    params(("id" = String, Path, description = "Video id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not your video, or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such video", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_video(
    State(app): State<App>,
    who: SignedIn,
    PathArg(id): PathArg,
) -> ApiResult<StatusCode> {
    app.delete_video(&who.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a view counted.
#[derive(Debug, Clone, serde::Serialize, Deserialize, ToSchema)]
pub struct ViewCounted {
    /// False when this viewer's view of this video was counted in the last 30 minutes.
    pub counted: bool,
}

/// Count a view (once per viewer per video per 30 minutes).
#[utoipa::path(post, path = "/api/v1/videos/{id}/views", tag = "videos",
    params(("id" = String, Path, description = "Video id")),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Counted or not", body = ViewCounted),
        (status = 401, description = "Bearer token invalid or expired", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such playable video", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn count_view(
    State(app): State<App>,
    who: Caller,
    info: RequestInfo,
    PathArg(id): PathArg,
) -> ApiResult<Json<ViewCounted>> {
    let key = if let Some(u) = &who.user {
        format!("u:{}", u.id)
    } else {
        let ua = info
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        format!(
            "a:{}",
            &crate::ids::secret_hash(&format!("{}|{ua}", info.ip))[..32]
        )
    };
    let counted = app.count_view(who.user.as_ref(), &key, &id).await?;
    Ok(Json(ViewCounted { counted }))
}

/// A chat token for a channel's room.
#[utoipa::path(post, path = "/api/v1/chat/token", tag = "chat", request_body = ChatTokenRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A token", body = ChatToken),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in (anonymous viewers read without a token)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such channel", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Chat not configured, or the database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn chat_token(
    State(app): State<App>,
    headers: HeaderMap,
    who: SignedIn,
    JsonBody(req): JsonBody<ChatTokenRequest>,
) -> ApiResult<Json<ChatToken>> {
    let mut token = app.chat_token(&who.user, &req.channel).await?;
    token.url = token.url.map(|u| with_host(&u, &headers));
    Ok(Json(token))
}

/// What the web application needs to know of this site.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct Site {
    /// The chat's Socket.IO URL (none: no chat).
    pub chat_url: Option<String>,
    /// Signed-in users may post in the chat (chat tokens are minted).
    pub chat_posting: bool,
    /// OBS "Server" for going live.
    pub rtmp_url: String,
    /// The RTMP application channels publish to (a channel's chat room is
    /// `<live_app>:<slug>`).
    pub live_app: String,
    /// Prefix of media URLs (empty: this origin).
    pub media_base: String,
    /// The tus upload endpoint.
    pub upload_url: String,
    /// Largest upload accepted, in bytes (none: not known here).
    pub max_upload_bytes: Option<u64>,
}

/// The site's settings for the web application.
#[utoipa::path(get, path = "/api/v1/site", tag = "meta",
    responses((status = 200, description = "The site's settings", body = Site)))]
async fn site(State(app): State<App>, headers: HeaderMap) -> Json<Site> {
    let c = app.config();
    Json(Site {
        chat_url: c.chat_url.as_deref().map(|u| with_host(u, &headers)),
        chat_posting: c.chat_secret.is_some(),
        rtmp_url: with_host(&app.rtmp_url(), &headers),
        live_app: c.live_app.clone(),
        media_base: c.media_base.clone(),
        upload_url: format!("{}/files/", c.media_base),
        max_upload_bytes: c.max_upload_bytes,
    })
}

/// The host name the client used (its `Host` header without the port; `localhost` when
/// missing or not a plain host name).
pub fn request_host(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
    {
        name.to_string()
    } else {
        "localhost".into()
    }
}

/// `template` with `{host}` replaced by the request's host name.
fn with_host(template: &str, headers: &HeaderMap) -> String {
    if template.contains("{host}") {
        template.replace("{host}", &request_host(headers))
    } else {
        template.to_string()
    }
}

/// A role change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// The new role.
    pub role: Role,
}

/// Give an account a role (admins only).
#[utoipa::path(put, path = "/api/v1/admin/users/{username}/role", tag = "admin", request_body = RoleChange,
    params(("username" = String, Path, description = "Username")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Changed", body = User),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin, or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_role(
    State(app): State<App>,
    who: SignedIn,
    PathArg(username): PathArg,
    JsonBody(change): JsonBody<RoleChange>,
) -> ApiResult<Json<User>> {
    if who.user.role != Role::Admin {
        return Err(ApiError(AppError::Forbidden("admins only".into())));
    }
    let mut u = app.set_role(&username, change.role).await?;
    u.email = String::new();
    Ok(Json(u))
}

/// Check a hook request's signature (`X-Videopick-Signature`, the shared hook secret).
fn verified(app: &App, headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    let Some(secret) = app
        .config()
        .hook_secret
        .as_deref()
        .filter(|s| !s.is_empty())
    else {
        return Err(ApiError(AppError::Forbidden(
            "hooks are off: no hook secret is configured".into(),
        )));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ok = headers
        .get("x-videopick-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| crate::hooks::verify(secret.as_bytes(), h, body, now));
    if ok {
        Ok(())
    } else {
        Err(ApiError(AppError::Unauthenticated))
    }
}

/// A signed hook's body: the signature checked, then the JSON read.
fn signed_hook<T: DeserializeOwned>(app: &App, headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    verified(app, headers, body)?;
    serde_json::from_slice(body).map_err(|e| ApiError(AppError::invalid("body", e.to_string())))
}

/// The media server's auth hook (signed): may this publish go ahead, and as which stream?
#[utoipa::path(post, path = "/api/v1/hooks/auth", tag = "hooks", request_body = crate::hooks::AuthAsk,
    responses(
        (status = 200, description = "Allowed (a publish: under the channel's name)", body = crate::hooks::AuthGrant),
        (status = 400, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad signature", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Refused (wrong key), or hooks are off", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Keys cannot be checked now", body = Problem, content_type = "application/problem+json"),
    ))]
async fn hook_auth(
    State(app): State<App>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<crate::hooks::AuthGrant>> {
    let ask: crate::hooks::AuthAsk = signed_hook(&app, &headers, &body)?;
    let grant = app.hook_auth(&ask).await?;
    Ok(Json(match grant {
        Some((stream, record)) => crate::hooks::AuthGrant {
            stream: Some(stream),
            record: Some(record),
        },
        None => crate::hooks::AuthGrant::default(),
    }))
}

/// The media server's event webhook (signed): publishes, unpublishes, stream stats.
#[utoipa::path(post, path = "/api/v1/hooks/events", tag = "hooks", request_body = crate::hooks::MediaEvent,
    responses(
        (status = 204, description = "Taken in"),
        (status = 400, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad signature", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Hooks are off", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable: send again", body = Problem, content_type = "application/problem+json"),
    ))]
async fn hook_events(
    State(app): State<App>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    app.hook_event(&signed_hook(&app, &headers, &body)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The media server's tus hooks (signed): uploads belong to signed-in accounts.
#[utoipa::path(post, path = "/api/v1/hooks/tus", tag = "hooks", request_body = crate::hooks::TusHook,
    responses(
        (status = 204, description = "Allowed / taken in"),
        (status = 400, description = "Invalid body or metadata", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad signature, or the upload's user is not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Hooks are off, or not the user's channel", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not the user's upload, or no such channel", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The user has no channel yet", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn hook_tus(
    State(app): State<App>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    app.hook_tus(&signed_hook(&app, &headers, &body)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The media server's access hook (signed): may this request fetch a video's files?
#[utoipa::path(post, path = "/api/v1/hooks/media", tag = "hooks", request_body = crate::hooks::MediaAsk,
    responses(
        (status = 200, description = "Allowed (for everyone, or for this requester)", body = crate::hooks::MediaAccess),
        (status = 400, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad signature", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Hooks are off", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not for this requester (a private video, or a deleted one)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn hook_media(
    State(app): State<App>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<crate::hooks::MediaAccess>> {
    match app.hook_media(&signed_hook(&app, &headers, &body)?).await? {
        Some(access) => Ok(Json(access)),
        None => Err(ApiError(AppError::NotFound("video"))),
    }
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
async fn openapi() -> Response {
    let mut r = Json(ApiDoc::openapi()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
        );
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "VideoPick API", version = "1", description = "Accounts, channels and stream keys, live sessions, videos and chat tokens. Errors are RFC 9457 problems."),
    paths(openapi, site, session, sign_up, sign_in, sign_out, sign_out_all, me, my_channels, my_videos,
        create_channel, channel, channel_settings, update_channel, rotate_key, channel_videos,
        live_now, latest_videos, video, update_video, delete_video, count_view, chat_token, set_role,
        hook_auth, hook_events, hook_tus, hook_media),
    components(schemas(Problem, ViewCounted, RoleChange)),
    modifiers(&SecurityAddon),
    tags(
        (name = "accounts", description = "Sign up, sign in, sessions"),
        (name = "channels", description = "Channels and their stream keys"),
        (name = "live", description = "What is live now"),
        (name = "videos", description = "The video catalog"),
        (name = "chat", description = "Chat tokens"),
        (name = "admin", description = "Administration"),
        (name = "hooks", description = "Signed hooks from media servers on other machines"),
        (name = "meta", description = "This document and the site's settings"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Cookie and Authorization headers from the wire never panic the parsers.
        #[test]
        fn session_headers_never_panic(cookie in "\\PC{0,200}", auth in "\\PC{0,200}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                h.insert(header::COOKIE, v);
            }
            if let Ok(v) = HeaderValue::from_str(&auth) {
                h.insert(header::AUTHORIZATION, v);
            }
            let _ = cookie_token(&h);
            let _ = bearer_token(&h);
        }
    }

    #[test]
    fn request_hosts_are_names_only() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(v).unwrap());
            request_host(&m)
        };
        assert_eq!(h("example.com:8000"), "example.com");
        assert_eq!(h("[::1]:8000"), "[::1]");
        assert_eq!(h("evil.com/\"x"), "localhost");
        assert_eq!(request_host(&HeaderMap::new()), "localhost");
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_static("10.1.2.3:8000"));
        assert_eq!(
            with_host("rtmp://{host}:1935/live", &m),
            "rtmp://10.1.2.3:1935/live"
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; vp_session=vps_abc; b=2"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("vps_abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  tok "),
        );
        assert_eq!(bearer_token(&h).as_deref(), Some("tok"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        assert_eq!(bearer_token(&h), None);
    }
}
