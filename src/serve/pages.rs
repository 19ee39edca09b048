//! The console's handlers: each loads its page's data off the async threads (the ledger and
//! the disk block), then answers HTML (askama, escaped) or JSON (`/api/v1`).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use chrono::Utc;
use serde::Deserialize;

use super::data::{self, DataError, IncidentQuery};
use super::{detail, App, Peer};

type AppState = State<Arc<App>>;

/// An error answer: HTML for pages, plain text for the API.
pub struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
    pub fn not_found() -> Self {
        Failure::new(StatusCode::NOT_FOUND, "not found")
    }
    pub fn bad_id() -> Self {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "an id is letters, digits and - only",
        )
    }
}

impl From<DataError> for Failure {
    fn from(e: DataError) -> Self {
        match e {
            DataError::Other(m) => Failure::new(StatusCode::BAD_REQUEST, m),
            e => {
                tracing::error!("serve: {e:#}");
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the state directory could not be read; the log says why",
                )
            }
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: bool,
    status: String,
    message: &'a str,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            nav: true,
            status: self.status.to_string(),
            message: &self.message,
        };
        match page.render() {
            Ok(h) => (self.status, Html(h)).into_response(),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}

/// Runs a blocking read off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DataError> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "the read failed"))?
        .map_err(Failure::from)
}

pub fn html(t: &impl Template) -> Result<Response, Failure> {
    t.render()
        .map(|h| Html(h).into_response())
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

pub async fn not_found() -> Failure {
    Failure::not_found()
}

pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/style.css"),
    )
        .into_response()
}

// ---- login ----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: bool,
    message: Option<String>,
    next: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Only a local path (never `//host` or a scheme) is followed after login.
fn local_next(n: Option<&str>) -> String {
    match n {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/".to_string(),
    }
}

pub async fn login_page(Query(q): Query<NextQuery>) -> Result<Response, Failure> {
    html(&LoginPage {
        nav: false,
        message: None,
        next: local_next(q.next.as_deref()),
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn login(
    State(app): AppState,
    peer: Option<Extension<Peer>>,
    Form(f): Form<LoginForm>,
) -> Result<Response, Failure> {
    let ip = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0 .0.ip());
    let next = local_next(f.next.as_deref());
    if let Some(wait) = app.sessions.limited(ip) {
        let secs = wait.as_secs().max(1);
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            Html(
                LoginPage {
                    nav: false,
                    message: Some(format!("too many refused logins; try again in {secs} s")),
                    next,
                }
                .render()
                .unwrap_or_default(),
            ),
        )
            .into_response();
        if let Ok(v) = secs.to_string().parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let app2 = app.clone();
    let (user, password) = (f.user.clone(), f.password);
    let ok = tokio::task::spawn_blocking(move || app2.creds.login_ok(&user, &password))
        .await
        .unwrap_or(false);
    if !ok {
        app.sessions.refused(ip);
        tracing::warn!(
            "serve: refused login for user {:?} from {ip}",
            crate::store::fsx::escape_text(&f.user)
        );
        let page = LoginPage {
            nav: false,
            message: Some("wrong user or password".into()),
            next,
        };
        return Ok((
            StatusCode::UNAUTHORIZED,
            Html(page.render().unwrap_or_default()),
        )
            .into_response());
    }
    let id = app
        .sessions
        .create(&f.user)
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let cookie = format!(
        "{}={id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        super::auth::COOKIE,
        super::auth::SESSION_TTL.as_secs()
    );
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = cookie.parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

pub async fn logout(State(app): AppState, headers: HeaderMap) -> Response {
    for v in headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        if let Some(id) = super::auth::cookie_value(v) {
            app.sessions.end(id);
        }
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = format!(
        "{}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        super::auth::COOKIE
    )
    .parse()
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

// ---- overview ----

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    nav: bool,
    run_status: String,
    o: data::Overview,
    charts: Vec<String>,
}

pub async fn overview(State(app): AppState) -> Result<Response, Failure> {
    let src = app.source.clone();
    let now = Utc::now();
    let o = blocking(move || data::overview(&src, now)).await?;
    let charts = super::charts::overview_charts(&o.history, now);
    html(&OverviewPage {
        nav: true,
        run_status: o.run_status.clone().unwrap_or_else(|| "NONE".into()),
        o,
        charts,
    })
}

pub async fn api_overview(State(app): AppState) -> Result<Response, Failure> {
    let src = app.source.clone();
    let o = blocking(move || data::overview(&src, Utc::now())).await?;
    Ok(Json(o).into_response())
}

// ---- incidents ----

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsPage {
    nav: bool,
    q: IncidentQuery,
    buckets: Vec<(&'static str, bool)>,
    statuses: Vec<(&'static str, bool)>,
    sorts: Vec<(&'static str, bool)>,
    list: data::IncidentList,
    next_query: String,
}

/// A select's options, the chosen one marked.
fn options(all: &[&'static str], chosen: &Option<String>) -> Vec<(&'static str, bool)> {
    let c = chosen.as_deref().unwrap_or_default();
    all.iter().map(|o| (*o, *o == c)).collect()
}

/// The query string of `q` with another page.
fn with_page(q: &IncidentQuery, page: u64) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    for (k, v) in [
        ("bucket", opt(&q.bucket)),
        ("status", opt(&q.status)),
        ("agent", opt(&q.agent)),
        ("rule", opt(&q.rule)),
        ("group", opt(&q.group)),
        ("from", opt(&q.from)),
        ("to", opt(&q.to)),
        ("q", opt(&q.q)),
        ("sort", opt(&q.sort)),
    ] {
        if !v.is_empty() {
            s.append_pair(k, &v);
        }
    }
    s.append_pair("page", &page.to_string());
    s.append_pair("limit", &q.limit().to_string());
    s.finish()
}

pub async fn incidents(
    State(app): AppState,
    Query(q): Query<IncidentQuery>,
) -> Result<Response, Failure> {
    let src = app.source.clone();
    let q2 = q.clone();
    let list = blocking(move || data::incidents(&src, &q2, Utc::now())).await?;
    let next_query = with_page(&q, q.page() + 1);
    html(&IncidentsPage {
        nav: true,
        buckets: options(&["", "high", "medium", "low", "suppressed"], &q.bucket),
        statuses: options(&["", "open", "closed"], &q.status),
        sorts: options(&["newest", "level"], &q.sort),
        q,
        list,
        next_query,
    })
}

pub async fn api_incidents(
    State(app): AppState,
    Query(q): Query<IncidentQuery>,
) -> Result<Response, Failure> {
    let src = app.source.clone();
    let list = blocking(move || data::incidents(&src, &q, Utc::now())).await?;
    Ok(Json(list).into_response())
}

// ---- metrics ----

/// `/metrics`: `metrics.prom` as the last run wrote it, read at each request.
pub async fn metrics(State(app): AppState) -> Result<Response, Failure> {
    let src = app.source.clone();
    let text = blocking(move || {
        let state = src.state()?;
        match state.root.read_regular(b"metrics.prom", 64 << 20)? {
            crate::store::fsx::ReadOutcome::Bytes(b) => Ok(Some(b)),
            _ => Ok(None),
        }
    })
    .await?;
    let body = text.unwrap_or_else(|| b"# no run has written metrics.prom yet\n".to_vec());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

// ---- the pages of `detail` ----

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    pub page: Option<u64>,
    #[serde(default)]
    pub limit: Option<u64>,
}

fn checked(id: &str) -> Result<(), Failure> {
    if data::valid_id(id) {
        Ok(())
    } else {
        Err(Failure::bad_id())
    }
}

pub async fn incident(
    State(app): AppState,
    Path(id): Path<String>,
    Query(p): Query<PageQuery>,
) -> Result<Response, Failure> {
    checked(&id)?;
    let src = app.source.clone();
    let d = blocking(move || detail::incident(&src, &id, p.page, p.limit, Utc::now())).await?;
    let d = d.ok_or_else(Failure::not_found)?;
    html(&detail::IncidentPage::new(d))
}

pub async fn api_incident(
    State(app): AppState,
    Path(id): Path<String>,
    Query(p): Query<PageQuery>,
) -> Result<Response, Failure> {
    checked(&id)?;
    let src = app.source.clone();
    let d = blocking(move || detail::incident(&src, &id, p.page, p.limit, Utc::now())).await?;
    Ok(Json(d.ok_or_else(Failure::not_found)?).into_response())
}

pub async fn cases(
    State(app): AppState,
    Query(q): Query<detail::CaseQuery>,
) -> Result<Response, Failure> {
    let src = app.source.clone();
    let q2 = q.clone();
    let list = blocking(move || detail::cases(&src, &q2)).await?;
    html(&detail::CasesPage::new(q, list))
}

pub async fn api_cases(
    State(app): AppState,
    Query(q): Query<detail::CaseQuery>,
) -> Result<Response, Failure> {
    let src = app.source.clone();
    let list = blocking(move || detail::cases(&src, &q)).await?;
    Ok(Json(list).into_response())
}

pub async fn case(State(app): AppState, Path(id): Path<String>) -> Result<Response, Failure> {
    checked(&id)?;
    let src = app.source.clone();
    let c = blocking(move || detail::case(&src, &id)).await?;
    html(&detail::CasePage::new(c.ok_or_else(Failure::not_found)?))
}

pub async fn api_case(State(app): AppState, Path(id): Path<String>) -> Result<Response, Failure> {
    checked(&id)?;
    let src = app.source.clone();
    let c = blocking(move || detail::case(&src, &id)).await?;
    Ok(Json(c.ok_or_else(Failure::not_found)?).into_response())
}

pub async fn pack_file(
    State(app): AppState,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, Failure> {
    checked(&id)?;
    if !detail::valid_file_name(&file) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "a pack file name is letters, digits, ., - and _ only",
        ));
    }
    let src = app.source.clone();
    let f = blocking(move || detail::pack_file(&src, &id, &file)).await?;
    html(&f.ok_or_else(Failure::not_found)?)
}

pub async fn policy(State(app): AppState) -> Result<Response, Failure> {
    let src = app.source.clone();
    let file = app.policy_file.clone();
    let p = blocking(move || detail::policy(&src, file.as_deref(), Utc::now())).await?;
    html(&detail::PolicyPage { nav: true, p })
}

pub async fn api_policy(State(app): AppState) -> Result<Response, Failure> {
    let src = app.source.clone();
    let file = app.policy_file.clone();
    let p = blocking(move || detail::policy(&src, file.as_deref(), Utc::now())).await?;
    Ok(Json(p).into_response())
}

pub async fn quarantine(
    State(app): AppState,
    Query(p): Query<PageQuery>,
) -> Result<Response, Failure> {
    let src = app.source.clone();
    let q = blocking(move || detail::quarantine(&src, p.page, p.limit)).await?;
    html(&detail::QuarantinePage { nav: true, q })
}

pub async fn api_quarantine(
    State(app): AppState,
    Query(p): Query<PageQuery>,
) -> Result<Response, Failure> {
    let src = app.source.clone();
    let q = blocking(move || detail::quarantine(&src, p.page, p.limit)).await?;
    Ok(Json(q).into_response())
}

/// Counts in a map, for templates.
pub type Counts = BTreeMap<String, u64>;
