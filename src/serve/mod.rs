//! `signalfoundry serve`: the console, a read-only web view of one state directory for
//! analysts and operators, and `/api/v1` JSON for every list.
//!
//! Design constraints:
//! - Read-only: the state directory through `StateDir::open_read_only` and `read_regular`,
//!   the ledger through `Ledger::open_read_only`; sessions live in memory. It runs beside
//!   `run`, `daemon` and triage workers and takes no lock.
//! - Every route but `/healthz` (and the login page and its stylesheet) needs a bearer token
//!   or a session cookie (HttpOnly, Secure, SameSite=Strict); refused logins are rate-limited
//!   ([`auth`]).
//! - Every answer carries `Content-Security-Policy: default-src 'self'` and the usual headers;
//!   pages need no JavaScript; values are HTML-escaped by the templates (askama), and the only
//!   unescaped HTML is our SVG and Markdown passed through ammonia.
//! - Ids from a path are checked against `[A-Za-z0-9-]+` before anything is looked up; files
//!   are reached only by names from the ledger or fixed names.
//! - Bounded: request time ([`REQUEST_TIMEOUT`]), header read time, connections
//!   ([`MAX_CONNECTIONS`]), page sizes ([`data::MAX_PAGE`]).
//!
//! Layout: [`auth`] (credentials, sessions, rate limit), [`data`] (what each page shows, read
//! from the store), [`charts`] (SVG), [`pages`] (handlers and templates), this file (the router,
//! the middleware, the listener, TLS).

pub mod auth;
pub mod charts;
pub mod data;
pub mod detail;
pub mod pages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;

/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a client may take to send its request head (and its TLS handshake).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; the next wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;

pub const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What every handler shares.
pub struct App {
    pub source: data::Source,
    pub creds: auth::Credentials,
    pub sessions: auth::Sessions,
    /// The policy file, for the policy page.
    pub policy_file: Option<std::path::PathBuf>,
    pub tls: bool,
}

/// The client's address (the connection's peer), for the login rate limit.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serve: {0}")]
    Config(String),
    #[error("serve: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serve: TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("serve: {0}")]
    Io(#[from] std::io::Error),
}

/// The router with its middleware (tests call it without a socket).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/incidents", get(pages::incidents))
        .route("/incidents/{id}", get(pages::incident))
        .route("/cases", get(pages::cases))
        .route("/cases/{id}", get(pages::case))
        .route("/cases/{id}/pack/{file}", get(pages::pack_file))
        .route("/policy", get(pages::policy))
        .route("/quarantine", get(pages::quarantine))
        .route("/api/v1/overview", get(pages::api_overview))
        .route("/api/v1/incidents", get(pages::api_incidents))
        .route("/api/v1/incidents/{id}", get(pages::api_incident))
        .route("/api/v1/cases", get(pages::api_cases))
        .route("/api/v1/cases/{id}", get(pages::api_case))
        .route("/api/v1/policy", get(pages::api_policy))
        .route("/api/v1/quarantine", get(pages::api_quarantine))
        .route("/metrics", get(pages::metrics))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/static/style.css", get(pages::stylesheet))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(app.clone(), harden))
        .with_state(app)
}

/// Paths that answer without authentication.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/login" | "/static/style.css")
}

/// Whether the request carries a good bearer token or session cookie.
pub fn authenticated(app: &App, req: &Request) -> bool {
    let h = req.headers();
    if let Some(t) = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return app.creds.token_ok(t.trim());
    }
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(auth::cookie_value)
        .any(|id| app.sessions.valid(id))
}

async fn authenticate(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    if is_public(&path) || authenticated(&app, &req) {
        return next.run(req).await;
    }
    if path.starts_with("/api/") || path == "/metrics" {
        let mut r = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"signalfoundry\""),
        );
        return r;
    }
    let next_path = if path == "/" || !path.starts_with('/') || path.starts_with("//") {
        String::from("/")
    } else {
        path
    };
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", &next_path)
        .finish();
    Redirect::to(&format!("/login?{q}")).into_response()
}

/// The security headers on every answer, and the request time bound.
async fn harden(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    req: Request,
    next: Next,
) -> Response {
    let mut r = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the request took too long\n",
        )
            .into_response(),
    };
    let h = r.headers_mut();
    let mut set = |k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::CACHE_CONTROL, "no-store");
    set(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        header::HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
    );
    if app.tls {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    r
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use std::io::BufReader;
    let shown = crate::store::fsx::shown;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(
        std::fs::File::open(cert).map_err(|e| ServeError::Tls(format!("{}: {e}", shown(cert))))?,
    ))
    .collect::<Result<_, _>>()
    .map_err(|e| ServeError::Tls(format!("{}: {e}", shown(cert))))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "{}: no certificate in it",
            shown(cert)
        )));
    }
    let key = rustls_pemfile::private_key(&mut BufReader::new(
        std::fs::File::open(key).map_err(|e| ServeError::Tls(format!("{}: {e}", shown(key))))?,
    ))
    .map_err(|e| ServeError::Tls(format!("{}: {e}", shown(key))))?
    .ok_or_else(|| ServeError::Tls(format!("{}: no private key in it", shown(key))))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves until `shutdown` resolves. Prints `serve: listening on ADDR` once bound (tests wait
/// for it).
pub async fn serve(
    app: Arc<App>,
    addr: SocketAddr,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let acceptor = tls.as_ref().map(|(c, k)| tls_acceptor(c, k)).transpose()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr()?;
    crate::cmd::stdout_line(&format!(
        "serve: listening on {}://{bound}",
        if acceptor.is_some() { "https" } else { "http" }
    ));
    let router = router(app);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("serve: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            let http = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                b
            };
            let result = match acceptor {
                Some(a) => match tokio::time::timeout(HEADER_TIMEOUT, a.accept(tcp)).await {
                    Ok(Ok(s)) => http.serve_connection(TokioIo::new(s), svc).await,
                    _ => return,
                },
                None => http.serve_connection(TokioIo::new(tcp), svc).await,
            };
            if let Err(e) = result {
                tracing::debug!("serve: connection from {peer}: {e}");
            }
        });
    }
}
