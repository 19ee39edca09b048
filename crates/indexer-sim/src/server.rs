//! The HTTPS server: TLS, basic auth, routing, fault injection; and the embedding API
//! (`Simulator::start` → `SimHandle`).
//!
//! Design constraints:
//! - Runs on its own thread and tokio runtime, so a synchronous caller (a test, the pipeline's
//!   `demo`) can embed it; the handle's drop (or `shutdown`) stops it and joins the thread.
//! - Faults apply to `_search`, `_count` and the PIT calls after authentication, never to
//!   `GET /` (the poller reads the version there once; a flaky `GET /` would only test retry
//!   code that the search faults already test).
//! - The fault sequence is drawn from a generator seeded by `seed`, so a run is repeatable for
//!   the same request order.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::config::{FaultKind, SimConfig};
use crate::error::SimError;
use crate::opensearch::{cluster_info, has_pit, OsError};
use crate::pit::{Pit, Pits, MAX_KEEP_ALIVE};
use crate::query::{parse_pit_ids, parse_search};
use crate::search::{count, search, Degrade, View};
use crate::store::{Store, SHARDS_PER_INDEX};
use crate::time::{now_ms, parse_duration};

type RespBody = BoxBody<Bytes, io::Error>;

/// Largest request body accepted (OpenSearch's `http.max_content_length` is larger; no poller
/// request comes near this).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Counters the handle reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// HTTP requests received (every route, authenticated or not).
    pub requests: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Point-in-time contexts open now.
    pub pits_open: usize,
    /// Documents that exist or will exist.
    pub docs_total: usize,
    /// Documents searchable now.
    pub docs_searchable: usize,
}

impl SimStats {
    /// Faults injected, all kinds.
    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

struct Faults {
    rate: f64,
    kinds: Vec<FaultKind>,
    rng: Mutex<ChaCha8Rng>,
}

impl Faults {
    fn draw(&self) -> Option<(FaultKind, u64)> {
        if self.rate <= 0.0 || self.kinds.is_empty() {
            return None;
        }
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !rng.gen_bool(self.rate.clamp(0.0, 1.0)) {
            return None;
        }
        let kind = self.kinds[rng.gen_range(0..self.kinds.len())];
        Some((kind, rng.next_u64_compat()))
    }
}

trait NextU64 {
    fn next_u64_compat(&mut self) -> u64;
}

impl NextU64 for ChaCha8Rng {
    fn next_u64_compat(&mut self) -> u64 {
        rand::RngCore::next_u64(self)
    }
}

struct State {
    store: Store,
    start: Instant,
    pits: Pits,
    has_pit: bool,
    server_version: String,
    wazuh_compat: bool,
    credentials: String,
    slow: Duration,
    faults: Faults,
    requests: AtomicU64,
    fault_counts: [AtomicU64; 8],
}

impl State {
    fn now_snapshot(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn count_fault(&self, kind: FaultKind) {
        let i = FaultKind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("kind is in ALL");
        self.fault_counts[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts simulators.
pub struct Simulator;

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    ca_pem: String,
    state: Arc<State>,
    shutdown: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Simulator {
    /// Builds the corpus, makes the certificates, binds `cfg.listen` and serves on a thread of
    /// its own. The socket accepts connections when this returns.
    pub fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        if let Some(r) = cfg.rate {
            if !(r > 0.0 && r.is_finite()) {
                return Err(SimError::Config(format!(
                    "rate must be a positive number of alerts per second, got {r}"
                )));
            }
        }
        for (name, v) in [("late rate", cfg.late_rate), ("fault rate", cfg.fault_rate)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(SimError::Config(format!(
                    "{name} must be between 0 and 1, got {v}"
                )));
            }
        }
        let end = cfg.end_time.unwrap_or_else(Utc::now);
        let mut raw = match &cfg.corpus {
            Some(path) => crate::corpus::load(path, cfg.seed)?,
            None => crate::generate::generate(cfg.alerts, cfg.seed, end),
        };
        crate::corpus::schedule(&mut raw, cfg.rate, cfg.late_rate, cfg.seed);
        let store = Store::new(raw);
        let tls = crate::tls::make()?;

        let listener =
            std::net::TcpListener::bind(cfg.listen).map_err(|source| SimError::Bind {
                addr: cfg.listen,
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| SimError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: cfg.listen,
            source,
        })?;

        let kinds = match &cfg.faults {
            Some(k) => k.clone(),
            None => FaultKind::TRANSIENT.to_vec(),
        };
        let credentials = format!("{}:{}", cfg.username, cfg.password);
        let state = Arc::new(State {
            store,
            start: Instant::now(),
            pits: Pits::default(),
            has_pit: has_pit(&cfg.server_version),
            server_version: cfg.server_version.clone(),
            wazuh_compat: cfg.wazuh_compat,
            credentials,
            slow: Duration::from_millis(cfg.slow_ms),
            faults: Faults {
                rate: cfg.fault_rate,
                kinds,
                rng: Mutex::new(ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xfa17)),
            },
            requests: AtomicU64::new(0),
            fault_counts: Default::default(),
        });

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("indexer-sim")
            .enable_all()
            .build()
            .map_err(SimError::Runtime)?;
        let (tx, rx) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("indexer-sim".into())
            .spawn(move || {
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => serve(l, acceptor, st, rx).await,
                        Err(e) => eprintln!("indexer-sim: cannot serve: {e}"),
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(SimError::Runtime)?;
        Ok(SimHandle {
            addr,
            ca_pem: tls.ca_pem,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

impl SimHandle {
    /// The bound address (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Every document that exists or will exist: `{"_index", "_id", "_source"}`, in
    /// `timestamp`, `manager.name`, `id` order.
    pub fn corpus(&self) -> Vec<Value> {
        let s = &self.state.store;
        s.docs
            .iter()
            .map(|d| {
                json!({
                    "_index": &*s.indices[d.index as usize],
                    "_id": &*d.id,
                    "_source": serde_json::from_str::<Value>(&d.source).unwrap_or(Value::Null),
                })
            })
            .collect()
    }

    /// Writes the corpus as JSON lines (`_index`, `_id`, `_source`), in the order of `corpus()`.
    pub fn write_corpus_jsonl(&self, w: &mut impl io::Write) -> io::Result<()> {
        let s = &self.state.store;
        for d in &s.docs {
            writeln!(
                w,
                r#"{{"_index":{},"_id":{},"_source":{}}}"#,
                serde_json::to_string(&*s.indices[d.index as usize])?,
                serde_json::to_string(&*d.id)?,
                d.source
            )?;
        }
        Ok(())
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        let st = &self.state;
        let now = st.now_snapshot();
        let mut faults = BTreeMap::new();
        for (i, k) in FaultKind::ALL.iter().enumerate() {
            let n = st.fault_counts[i].load(Ordering::Relaxed);
            if n > 0 {
                faults.insert(*k, n);
            }
        }
        SimStats {
            requests: st.requests.load(Ordering::Relaxed),
            faults,
            pits_open: st.pits.open(),
            docs_total: st.store.docs.len(),
            docs_searchable: st
                .store
                .docs
                .iter()
                .filter(|d| d.visible_at_ms <= now)
                .count(),
        }
    }

    /// How long after start every document is searchable (the end of a live stream).
    pub fn all_searchable_after(&self) -> Duration {
        Duration::from_millis(self.state.store.all_visible_at_ms())
    }

    /// Whether every document is searchable now.
    pub fn fully_indexed(&self) -> bool {
        self.state.start.elapsed() >= self.all_searchable_after()
    }

    /// Stops the server and waits for its thread.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
) {
    serve_https(listener, acceptor, shutdown, move |req| {
        handle(state.clone(), req)
    })
    .await
}

/// Serves HTTP/1.1 over TLS on `listener` with `handle` until `shutdown` changes: a TLS
/// handshake gets 10 s, each connection is its own task and ends at shutdown too. The
/// receivers of `receiver-sim` serve with it as well.
pub async fn serve_https<H, Fut, B, E>(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            res = listener.accept() => {
                let Ok((tcp, _)) = res else { continue };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let handle = handle.clone();
                let mut sd = shutdown.clone();
                tokio::spawn(async move {
                    let tls = tokio::select! {
                        r = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)) => match r {
                            Ok(Ok(s)) => s,
                            _ => return,
                        },
                        _ = sd.changed() => return,
                    };
                    let svc = hyper::service::service_fn(handle);
                    let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(tls), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = sd.changed() => {}
                    }
                });
            }
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> RespBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json_response(status: u16, body: Vec<u8>) -> Response<RespBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

fn error_response(e: &OsError) -> Response<RespBody> {
    json_response(e.status, e.to_body().to_string().into_bytes())
}

/// The security plugin's answer to missing or wrong credentials: a plain-text body.
fn unauthorized() -> Response<RespBody> {
    let mut r = Response::new(full(&b"Unauthorized"[..]));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("Basic realm=\"OpenSearch Security\""),
    );
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    r
}

/// A body whose `Content-Length` is the whole body but which stops halfway and then fails,
/// so hyper closes the connection mid-body.
struct Truncated {
    part: Option<Bytes>,
    total: u64,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl Body for Truncated {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(b) = self.part.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if let Some(p) = self.pause.as_mut() {
            // Let hyper flush the partial body before the connection is cut.
            if std::future::Future::poll(p.as_mut(), cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        if self.done {
            return Poll::Ready(None);
        }
        self.done = true;
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "indexer-sim: simulated truncated body",
        ))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total)
    }
}

fn truncate(resp: Response<RespBody>, body: Vec<u8>) -> Response<RespBody> {
    let total = body.len() as u64;
    let cut = body.len() / 2;
    let (mut parts, _) = resp.into_parts();
    parts
        .headers
        .insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(total));
    let t = Truncated {
        part: Some(Bytes::from(body).slice(..cut)),
        total,
        pause: Some(Box::pin(tokio::time::sleep(Duration::from_millis(30)))),
        done: false,
    };
    Response::from_parts(parts, t.boxed())
}

fn malformed(body: &[u8]) -> Vec<u8> {
    let mut out = body[..body.len() / 2].to_vec();
    out.extend_from_slice(b"\n<html><body><h1>502 Bad Gateway</h1></body></html>\n");
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Info,
    Search(Option<String>),
    Count(Option<String>),
    PitCreate(String),
    PitDelete,
    PitDeleteAll,
    PitList,
    BadMethod(&'static str),
    NoHandler,
}

fn route(method: &Method, segs: &[String], has_pit: bool) -> Route {
    let read = method == Method::GET || method == Method::POST;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        [] if method == Method::GET || method == Method::HEAD => Route::Info,
        [] => Route::BadMethod("GET, HEAD"),
        ["_search", "point_in_time"] if has_pit => {
            if method == Method::DELETE {
                Route::PitDelete
            } else {
                Route::BadMethod("DELETE")
            }
        }
        ["_search", "point_in_time", "_all"] if has_pit => match *method {
            Method::DELETE => Route::PitDeleteAll,
            Method::GET => Route::PitList,
            _ => Route::BadMethod("DELETE, GET"),
        },
        ["_search"] if read => Route::Search(None),
        ["_search"] => Route::BadMethod("GET, POST"),
        ["_count"] if read => Route::Count(None),
        ["_count"] => Route::BadMethod("GET, POST"),
        [idx, "_search"] if read && !idx.starts_with('_') => Route::Search(Some(idx.to_string())),
        [idx, "_count"] if read && !idx.starts_with('_') => Route::Count(Some(idx.to_string())),
        [idx, "_search", "point_in_time"] if has_pit && !idx.starts_with('_') => {
            if method == Method::POST {
                Route::PitCreate(idx.to_string())
            } else {
                Route::BadMethod("POST")
            }
        }
        _ => Route::NoHandler,
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else if let Some(pos) = rest.find(p) {
            rest = &rest[pos + p.len()..];
        } else {
            return false;
        }
    }
    true
}

/// Resolves an index expression (`a,b`, `wazuh-alerts-*`, `_all`, `-excluded`) at a snapshot.
fn resolve(store: &Store, expr: &str, snapshot_ms: u64) -> Result<Vec<bool>, OsError> {
    let n = store.indices.len();
    let exists = |i: usize| store.index_visible_at_ms[i] <= snapshot_ms;
    let mut mask = vec![false; n];
    for (k, part) in expr
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let (neg, pat) = match part.strip_prefix('-') {
            Some(p) if k > 0 => (true, p),
            _ => (false, part),
        };
        if pat == "_all" || pat.contains('*') {
            for (i, m) in mask.iter_mut().enumerate() {
                if exists(i) && (pat == "_all" || glob(pat, &store.indices[i])) {
                    *m = !neg;
                }
            }
        } else {
            match (0..n).find(|&i| &*store.indices[i] == pat && exists(i)) {
                Some(i) => mask[i] = !neg,
                None if neg => {}
                None => return Err(OsError::index_not_found(pat)),
            }
        }
    }
    Ok(mask)
}

fn authorized(state: &State, req: &Request<Incoming>) -> bool {
    let Some(h) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, b64)) = h.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .is_some_and(|raw| raw == state.credentials.as_bytes())
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    if !authorized(&state, &req) {
        return Ok(unauthorized());
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let params: Vec<(String, String)> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), "true".to_string()),
        })
        .collect();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Ok(error_response(&OsError::new(
                413,
                "content_too_long_exception",
                "request body is too large",
            )));
        }
    };
    let r = route(&method, &segs, state.has_pit);
    match r {
        Route::Info => {
            let body = if method == Method::HEAD {
                Vec::new()
            } else {
                cluster_info(&state.server_version, state.wazuh_compat)
                    .to_string()
                    .into_bytes()
            };
            return Ok(json_response(200, body));
        }
        Route::NoHandler => {
            return Ok(error_response(&OsError::no_handler(method.as_str(), &path)))
        }
        Route::BadMethod(allowed) => {
            let body = json!({"error": format!("Incorrect HTTP method for uri [{path}] and method [{method}], allowed: [{allowed}]"), "status": 405});
            return Ok(json_response(405, body.to_string().into_bytes()));
        }
        _ => {}
    }

    let started = Instant::now();
    let fault = state.faults.draw();
    let mut degrade = Degrade::None;
    if let Some((kind, pick)) = fault {
        match kind {
            FaultKind::TooMany => {
                state.count_fault(kind);
                let reason = "rejected execution of org.opensearch.common.util.concurrent.TimedRunnable@5d2b9d58 on QueueResizingOpenSearchThreadPoolExecutor[name = node-1/search, queue capacity = 1000, min queue capacity = 1000, max queue capacity = 1000, frame size = 2000, targeted response rate = 1s, task execution EWMA = 1.2ms, adjustment amount = 50, org.opensearch.common.util.concurrent.QueueResizingOpenSearchThreadPoolExecutor@3a4f8c1e[Running, pool size = 13, active threads = 13, queued tasks = 1000, completed tasks = 8251]]";
                let mut r =
                    error_response(&OsError::new(429, "rejected_execution_exception", reason));
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from_static("1"));
                return Ok(r);
            }
            FaultKind::Internal => {
                state.count_fault(kind);
                return Ok(error_response(&OsError::new(
                    500,
                    "exception",
                    "java.lang.IllegalStateException: indexer-sim simulated internal error",
                )));
            }
            FaultKind::Unavailable => {
                state.count_fault(kind);
                let e = OsError::all_shards_failed(
                    503,
                    "no_shard_available_action_exception",
                    "No shard available for [indices:data/read/search]",
                    None,
                    -1,
                    None,
                );
                return Ok(error_response(&e));
            }
            FaultKind::Unauthorized => {
                state.count_fault(kind);
                return Ok(unauthorized());
            }
            FaultKind::Slow => {
                state.count_fault(kind);
                tokio::time::sleep(state.slow).await;
            }
            FaultKind::Partial => {
                degrade = if pick % 2 == 0 {
                    Degrade::ShardFailed((pick / 2 % u64::from(SHARDS_PER_INDEX)) as u8)
                } else {
                    Degrade::TimedOut
                };
            }
            FaultKind::Truncated | FaultKind::Malformed => {}
        }
    }
    let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(0);
    let (status, body, partial_used) = match execute(&state, &r, &body, &params, degrade, took) {
        Ok((status, body, used)) => (status, body, used),
        Err(e) => (e.status, e.to_body().to_string().into_bytes(), false),
    };
    if partial_used {
        state.count_fault(FaultKind::Partial);
    }
    match fault.map(|f| f.0) {
        Some(FaultKind::Truncated) => {
            state.count_fault(FaultKind::Truncated);
            let resp = json_response(status, Vec::new());
            Ok(truncate(resp, body))
        }
        Some(FaultKind::Malformed) => {
            state.count_fault(FaultKind::Malformed);
            Ok(json_response(200, malformed(&body)))
        }
        _ => Ok(json_response(status, body)),
    }
}

/// Runs a search/count/PIT route. Returns (status, body, whether a partial degrade was applied).
fn execute(
    state: &State,
    r: &Route,
    body: &[u8],
    params: &[(String, String)],
    degrade: Degrade,
    took: u64,
) -> Result<(u16, Vec<u8>, bool), OsError> {
    let store = &state.store;
    let now = state.now_snapshot();
    match r {
        Route::Search(indices) => {
            let req = parse_search(body, params, now_ms(), false)?;
            if let Some((pit_id, keep_alive)) = &req.pit {
                if !state.has_pit {
                    return Err(OsError::bad_request(
                        "parsing_exception",
                        "Unknown key for a START_OBJECT in [pit].",
                    ));
                }
                if indices.is_some() {
                    return Err(OsError::new(400, "action_request_validation_exception", "Validation Failed: 1: [indices] cannot be used with point in time. Do not specify any index with point in time.;"));
                }
                if let Some(ka) = keep_alive {
                    if *ka > MAX_KEEP_ALIVE {
                        return Err(keep_alive_too_large(*ka));
                    }
                }
                let pit = state
                    .pits
                    .get(pit_id, *keep_alive)
                    .ok_or_else(|| OsError::pit_missing(pit_id))?;
                let view = View {
                    store,
                    snapshot_ms: pit.snapshot_ms,
                    indices: pit.indices,
                    excluded_shard: pit.excluded_shard,
                };
                let out = search(&view, &req, Some(pit_id), degrade, took)?;
                return Ok((200, out, degrade != Degrade::None));
            }
            let mask = resolve(store, indices.as_deref().unwrap_or("_all"), now)?;
            let view = View {
                store,
                snapshot_ms: now,
                indices: mask,
                excluded_shard: None,
            };
            Ok((
                200,
                search(&view, &req, None, degrade, took)?,
                degrade != Degrade::None,
            ))
        }
        Route::Count(indices) => {
            let req = parse_search(body, params, now_ms(), true)?;
            let mask = resolve(store, indices.as_deref().unwrap_or("_all"), now)?;
            let view = View {
                store,
                snapshot_ms: now,
                indices: mask,
                excluded_shard: None,
            };
            let d = if degrade == Degrade::TimedOut {
                Degrade::ShardFailed(0)
            } else {
                degrade
            };
            Ok((200, count(&view, &req, d), d != Degrade::None))
        }
        Route::PitCreate(indices) => {
            let ka = params
                .iter()
                .find(|(k, _)| k == "keep_alive")
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| {
                    OsError::new(
                        400,
                        "action_request_validation_exception",
                        "Validation Failed: 1: keep alive not specified;",
                    )
                })?;
            let ka = parse_duration(ka).ok_or_else(|| {
                OsError::bad_request("illegal_argument_exception", format!("failed to parse setting [keep_alive] with value [{ka}] as a time value: unit is missing or unrecognized"))
            })?;
            if ka > MAX_KEEP_ALIVE {
                return Err(keep_alive_too_large(ka));
            }
            let mask = resolve(store, indices, now)?;
            let excluded = match degrade {
                Degrade::ShardFailed(s) => Some(s),
                _ => None,
            };
            let view = View {
                store,
                snapshot_ms: now,
                indices: mask.clone(),
                excluded_shard: None,
            };
            let existing = view.existing_indices();
            let total = existing.len() as u64 * u64::from(SHARDS_PER_INDEX);
            let failed = if excluded.is_some() {
                existing.len() as u64
            } else {
                0
            };
            let creation_time = now_ms();
            let id = state.pits.create(Pit {
                indices: mask,
                snapshot_ms: now,
                excluded_shard: excluded,
                expires: Instant::now() + ka,
                creation_time,
                keep_alive: ka,
            })?;
            let mut shards = json!({"total": total, "successful": total - failed, "skipped": 0, "failed": failed});
            if let Some(s) = excluded {
                shards["failures"] = Value::Array(existing.iter().map(|&i| json!({
                    "shard": s, "index": &*store.indices[i], "node": crate::opensearch::NODE_ID,
                    "reason": {"type": "node_not_connected_exception", "reason": "[node-2][127.0.0.1:9300] Node not connected"}
                })).collect());
            }
            let out = json!({"pit_id": id, "_shards": shards, "creation_time": creation_time});
            Ok((200, out.to_string().into_bytes(), excluded.is_some()))
        }
        Route::PitDelete => {
            let ids = parse_pit_ids(body)?;
            let pits: Vec<Value> = state
                .pits
                .delete(&ids)
                .into_iter()
                .map(|(id, ok)| json!({"successful": ok, "pit_id": id}))
                .collect();
            Ok((200, json!({"pits": pits}).to_string().into_bytes(), false))
        }
        Route::PitDeleteAll => {
            let pits: Vec<Value> = state
                .pits
                .delete_all()
                .into_iter()
                .map(|id| json!({"successful": true, "pit_id": id}))
                .collect();
            Ok((200, json!({"pits": pits}).to_string().into_bytes(), false))
        }
        Route::PitList => {
            let pits: Vec<Value> = state.pits.list().into_iter().map(|(id, ct, ka)| json!({"pit_id": id, "creation_time": ct, "keep_alive": ka as u64})).collect();
            Ok((200, json!({"pits": pits}).to_string().into_bytes(), false))
        }
        Route::Info | Route::BadMethod(_) | Route::NoHandler => {
            Err(OsError::new(500, "exception", "unreachable route"))
        }
    }
}

fn keep_alive_too_large(ka: Duration) -> OsError {
    OsError::bad_request(
        "illegal_argument_exception",
        format!("Keep alive for request ({}s) is too large. It must be less than (1d). This limit can be set by changing the [point_in_time.max_keep_alive] cluster level setting.", ka.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn routes_follow_opensearch_paths_and_pit_needs_2_4() {
        assert_eq!(route(&Method::GET, &segs("/"), true), Route::Info);
        assert_eq!(
            route(&Method::POST, &segs("/wazuh-alerts-4.x-*/_search"), true),
            Route::Search(Some("wazuh-alerts-4.x-*".into()))
        );
        assert_eq!(
            route(&Method::POST, &segs("/_search"), true),
            Route::Search(None)
        );
        assert_eq!(
            route(&Method::POST, &segs("/a,b/_count"), true),
            Route::Count(Some("a,b".into()))
        );
        assert_eq!(
            route(&Method::POST, &segs("/w-*/_search/point_in_time"), true),
            Route::PitCreate("w-*".into())
        );
        assert_eq!(
            route(&Method::POST, &segs("/w-*/_search/point_in_time"), false),
            Route::NoHandler
        );
        assert_eq!(
            route(&Method::DELETE, &segs("/_search/point_in_time"), true),
            Route::PitDelete
        );
        assert_eq!(
            route(&Method::DELETE, &segs("/_search/point_in_time"), false),
            Route::NoHandler
        );
        assert_eq!(
            route(&Method::PUT, &segs("/_search"), true),
            Route::BadMethod("GET, POST")
        );
        assert_eq!(
            route(&Method::GET, &segs("/_cat/indices"), true),
            Route::NoHandler
        );
    }

    #[test]
    fn index_patterns_match_lists_and_wildcards() {
        assert!(glob("wazuh-alerts-4.x-*", "wazuh-alerts-4.x-2025.09.12"));
        assert!(glob("wazuh-*-2025.09.*", "wazuh-alerts-4.x-2025.09.12"));
        assert!(!glob("wazuh-archives-*", "wazuh-alerts-4.x-2025.09.12"));
        assert!(glob("*", "x"));
        assert_eq!(percent_decode("wazuh-alerts-4.x-%2A"), "wazuh-alerts-4.x-*");
    }
}
