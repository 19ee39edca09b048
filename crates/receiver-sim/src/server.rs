//! The HTTPS listener (one port, routed by path), fault injection, and the embedding API
//! (`Receivers::start` → `ReceiverHandle`).
//!
//! Design constraints:
//! - Runs on its own thread and tokio runtime, so a synchronous test can embed it while the
//!   pipeline under test runs as a separate process; the handle's drop (or `shutdown`) stops
//!   both listeners and joins the thread.
//! - Faults apply to every HTTP route after routing, never to SMTP. 429 and 500 are answered
//!   before the request is processed (an overloaded service does nothing); "lost" processes
//!   and records the request and then drops the connection, which is the case idempotency
//!   keys exist for.
//! - The fault sequence is drawn from a ChaCha8 generator seeded by `seed`, so a run is
//!   repeatable for the same request order.
//!
//! Routes (fixed prefixes; the rest of a notification path is the test's to choose):
//! - `POST /webhook/…` Standard Webhooks 1.0 (`notify`)
//! - `POST /slack/…` Slack incoming webhook (`notify`)
//! - `POST /teams/…` Teams Workflows webhook (`notify`)
//! - `POST /v2/enqueue` PagerDuty Events API v2 (`pagerduty`)
//! - `POST /api/v1/alert`, `POST /api/v1/query` TheHive 5 (`thehive`)
//! - `POST /alerts/add`, `GET /alerts/filter` DFIR-IRIS (`iris`)

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::sync::watch;

use crate::config::{Faults, ReceiverConfig};
use crate::error::Error;
use crate::record::{
    Delivery, FaultCounts, IrisAlert, Kind, PdState, Records, Rejection, TheHiveAlert,
    ThrottleCause, Throttled,
};
use crate::wire::{Bucket, Out, Req, Window};

/// Largest request body read; larger ones are answered 413 unread.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// The vendors' rate limiters, by webhook path or routing key.
#[derive(Default)]
pub(crate) struct Limits {
    pub slack: HashMap<String, Bucket>,
    pub teams: HashMap<String, Window>,
    pub pagerduty: HashMap<String, Window>,
}

/// State shared by the listeners and the handle.
pub(crate) struct Shared {
    pub cfg: ReceiverConfig,
    pub webhook_key: Vec<u8>,
    faults: Mutex<(Faults, ChaCha8Rng)>,
    rec: Mutex<Records>,
    limits: Mutex<Limits>,
}

impl Shared {
    pub fn records(&self) -> MutexGuard<'_, Records> {
        self.rec.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn limits(&self) -> MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn draw(&self) -> (Option<Fault>, Faults) {
        let mut g = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let f = g.0.clone();
        if f.p429 + f.p500 + f.p_slow + f.p_lost <= 0.0 {
            return (None, f);
        }
        let u: f64 = g.1.gen();
        let edges = [
            (f.p429, Fault::TooMany),
            (f.p500, Fault::Internal),
            (f.p_slow, Fault::Slow),
            (f.p_lost, Fault::Lost),
        ];
        let mut acc = 0.0;
        for (p, k) in edges {
            acc += p;
            if u < acc {
                return (Some(k), f);
            }
        }
        (None, f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    TooMany,
    Internal,
    Slow,
    Lost,
}

/// Starts receivers.
pub struct Receivers;

/// Running receivers. Dropping the handle stops them.
pub struct ReceiverHandle {
    https: SocketAddr,
    smtp: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    shutdown: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn bind(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), Error> {
    let e = |source| Error::Bind { addr, source };
    let l = std::net::TcpListener::bind(addr).map_err(e)?;
    l.set_nonblocking(true).map_err(e)?;
    let a = l.local_addr().map_err(e)?;
    Ok((l, a))
}

impl Receivers {
    /// Checks the configuration, makes the certificates, binds the HTTPS and SMTP listeners
    /// on 127.0.0.1 (ephemeral ports) and serves on a thread of its own. Both sockets accept
    /// connections when this returns.
    pub fn start(cfg: ReceiverConfig) -> Result<ReceiverHandle, Error> {
        let webhook_key = cfg.validate()?;
        let tls = crate::tls::make()?;
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (https_l, https) = bind(loopback)?;
        let (smtp_l, smtp) = bind(loopback)?;
        let shared = Arc::new(Shared {
            faults: Mutex::new((
                cfg.faults.clone(),
                ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xfa17),
            )),
            cfg,
            webhook_key,
            rec: Mutex::new(Records::default()),
            limits: Mutex::new(Limits::default()),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("receiver-sim")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let (tx, rx) = watch::channel(false);
        let https_acceptor = tokio_rustls::TlsAcceptor::from(tls.https.clone());
        let smtp_tls = tokio_rustls::TlsAcceptor::from(tls.smtp.clone());
        let st = shared.clone();
        let thread = std::thread::Builder::new()
            .name("receiver-sim".into())
            .spawn(move || {
                rt.block_on(async move {
                    let h = tokio::net::TcpListener::from_std(https_l);
                    let s = tokio::net::TcpListener::from_std(smtp_l);
                    match (h, s) {
                        (Ok(h), Ok(s)) => {
                            tokio::join!(
                                serve(h, https_acceptor, st.clone(), rx.clone()),
                                crate::smtp::serve(s, smtp_tls, st, rx),
                            );
                        }
                        (Err(e), _) | (_, Err(e)) => eprintln!("receiver-sim: cannot serve: {e}"),
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(Error::Runtime)?;
        Ok(ReceiverHandle {
            https,
            smtp,
            ca_pem: tls.ca_pem,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

impl ReceiverHandle {
    /// `https://127.0.0.1:PORT`, the base of every HTTP route.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.https)
    }

    /// The HTTPS listener's address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https
    }

    /// The CA certificate (PEM) that signed both listeners' certificate (for `localhost`,
    /// `127.0.0.1` and `::1`).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The SMTP listener (plain connection; STARTTLS required before AUTH and MAIL).
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp
    }

    /// Every accepted request, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.records().deliveries.clone()
    }

    /// The accepted requests of one receiver, in order.
    pub fn deliveries_of(&self, kind: Kind) -> Vec<Delivery> {
        let r = self.shared.records();
        r.deliveries
            .iter()
            .filter(|d| d.kind == kind)
            .cloned()
            .collect()
    }

    /// Every request refused as invalid, in order.
    pub fn rejected(&self) -> Vec<Rejection> {
        self.shared.records().rejected.clone()
    }

    /// Every request answered 429 (rate limit or injected), in order.
    pub fn throttled(&self) -> Vec<Throttled> {
        self.shared.records().throttled.clone()
    }

    /// Faults injected so far.
    pub fn faults_injected(&self) -> FaultCounts {
        self.shared.records().faults
    }

    /// Replaces the fault probabilities (the generator keeps its sequence).
    pub fn set_faults(&self, f: Faults) -> Result<(), Error> {
        f.validate()?;
        self.shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0 = f;
        Ok(())
    }

    /// PagerDuty alert state by `dedup_key`.
    pub fn pagerduty_alerts(&self) -> BTreeMap<String, PdState> {
        self.shared.records().pd.clone()
    }

    /// TheHive alerts, in creation order.
    pub fn thehive_alerts(&self) -> Vec<TheHiveAlert> {
        self.shared.records().thehive.clone()
    }

    /// DFIR-IRIS alerts, in creation order.
    pub fn iris_alerts(&self) -> Vec<IrisAlert> {
        self.shared.records().iris.clone()
    }

    /// Stops both listeners and waits for the thread.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for ReceiverHandle {
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
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    indexer_sim::serve_https(listener, acceptor, shutdown, move |req| {
        handle(shared.clone(), req)
    })
    .await
}

/// The service's error: hyper closes the connection without writing a response.
#[derive(Debug)]
struct Lost;

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("receiver-sim: injected lost response")
    }
}

impl std::error::Error for Lost {}

type Body = Full<Bytes>;

fn response(out: Out) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(out.body)));
    *r.status_mut() = StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = out.content_type {
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if let Some(s) = out.retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Webhook,
    Slack,
    Teams,
    PagerDuty,
    TheHiveAlert,
    TheHiveQuery,
    IrisAdd,
    IrisFilter,
}

impl Route {
    fn kind(self) -> Kind {
        match self {
            Route::Webhook => Kind::Webhook,
            Route::Slack => Kind::Slack,
            Route::Teams => Kind::Teams,
            Route::PagerDuty => Kind::PagerDuty,
            Route::TheHiveAlert | Route::TheHiveQuery => Kind::TheHive,
            Route::IrisAdd | Route::IrisFilter => Kind::Iris,
        }
    }
}

/// The route of a path, and whether the method is the one it takes.
fn route(method: &Method, path: &str) -> Option<(Route, bool)> {
    let tail = |p: &str| path.strip_prefix(p).is_some_and(|t| !t.is_empty());
    let r = if tail("/webhook/") {
        Route::Webhook
    } else if tail("/slack/") {
        Route::Slack
    } else if tail("/teams/") {
        Route::Teams
    } else {
        match path.trim_end_matches('/') {
            "/v2/enqueue" => Route::PagerDuty,
            "/api/v1/alert" => Route::TheHiveAlert,
            "/api/v1/query" => Route::TheHiveQuery,
            "/alerts/add" => Route::IrisAdd,
            "/alerts/filter" => return Some((Route::IrisFilter, method == Method::GET)),
            _ => return None,
        }
    };
    Some((r, method == Method::POST))
}

/// The vendor's answer to an overloaded request.
fn too_many(kind: Kind, secs: u64) -> Out {
    let out = match kind {
        Kind::Slack => Out::text(429, "rate_limited"),
        Kind::PagerDuty => crate::pagerduty::throttled(),
        Kind::TheHive => Out::json(
            429,
            &json!({"type": "TooManyRequests", "message": "Too many requests"}),
        ),
        Kind::Iris => Out::json(
            429,
            &json!({"status": "error", "message": "Too many requests", "data": []}),
        ),
        Kind::Teams => crate::notify::teams_throttled(),
        Kind::Webhook | Kind::Email => Out::empty(429),
    };
    out.retry_after(secs)
}

/// The vendor's answer to an internal failure.
fn internal(kind: Kind) -> Out {
    match kind {
        // Slack documents 500 `rollup_error` for incoming webhooks.
        Kind::Slack => Out::text(500, "rollup_error"),
        Kind::PagerDuty => Out::json(
            500,
            &json!({"status": "error", "message": "Internal server error"}),
        ),
        Kind::TheHive => Out::json(
            500,
            &json!({"type": "InternalError", "message": "receiver-sim simulated failure"}),
        ),
        Kind::Iris => Out::json(
            500,
            &json!({"status": "error", "message": "receiver-sim simulated failure", "data": []}),
        ),
        Kind::Teams | Kind::Webhook | Kind::Email => Out::empty(500),
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Lost> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let Some((route, method_ok)) = route(&method, &path) else {
        shared
            .records()
            .reject_unrouted(&path, 404, "no receiver at this path");
        return Ok(response(Out::text(404, "Not Found")));
    };
    let kind = route.kind();
    if !method_ok {
        shared
            .records()
            .reject(kind, &path, 405, format!("method {method} not allowed"));
        return Ok(response(Out::empty(405)));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            shared
                .records()
                .reject(kind, &path, 413, "request body over the read limit");
            return Ok(response(Out::empty(413)));
        }
    };
    let (fault, faults) = shared.draw();
    match fault {
        Some(Fault::TooMany) => {
            let mut r = shared.records();
            r.faults.too_many += 1;
            r.throttle(kind, &path, ThrottleCause::Fault);
            drop(r);
            return Ok(response(too_many(kind, faults.retry_after_secs)));
        }
        Some(Fault::Internal) => {
            shared.records().faults.internal += 1;
            return Ok(response(internal(kind)));
        }
        Some(Fault::Slow) => shared.records().faults.slow += 1,
        Some(Fault::Lost) | None => {}
    }
    let req = Req {
        path,
        query,
        headers,
        body,
    };
    // Processing runs in a task of its own, so a sender that gives up during a slow answer
    // (and drops the connection, and with it this future) still has its request processed:
    // the delivery it does not know about, which its retry then duplicates.
    let delay = (fault == Some(Fault::Slow)).then_some(faults.slow);
    let sh = shared.clone();
    let task = tokio::spawn(async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let out = process(&sh, route, &req);
        (out, req.path)
    });
    let (out, path) = task.await.map_err(|_| Lost)?;
    if out.status == 429 {
        shared
            .records()
            .throttle(kind, &path, ThrottleCause::RateLimit);
    }
    if fault == Some(Fault::Lost) {
        shared.records().faults.lost += 1;
        return Err(Lost);
    }
    Ok(response(out))
}

fn process(shared: &Shared, route: Route, req: &Req) -> Out {
    match route {
        Route::Webhook => crate::notify::webhook(shared, req),
        Route::Slack => crate::notify::slack(shared, req),
        Route::Teams => crate::notify::teams(shared, req),
        Route::PagerDuty => crate::pagerduty::enqueue(shared, req),
        Route::TheHiveAlert => crate::thehive::create(shared, req),
        Route::TheHiveQuery => crate::thehive::query(shared, req),
        Route::IrisAdd => crate::iris::add(shared, req),
        Route::IrisFilter => crate::iris::filter(shared, req),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_have_fixed_prefixes_and_one_method() {
        assert_eq!(
            route(&Method::POST, "/webhook/a/b"),
            Some((Route::Webhook, true))
        );
        assert_eq!(route(&Method::POST, "/webhook/"), None);
        assert_eq!(route(&Method::GET, "/slack/x"), Some((Route::Slack, false)));
        assert_eq!(
            route(&Method::POST, "/v2/enqueue"),
            Some((Route::PagerDuty, true))
        );
        assert_eq!(
            route(&Method::GET, "/alerts/filter"),
            Some((Route::IrisFilter, true))
        );
        assert_eq!(
            route(&Method::POST, "/api/v1/query"),
            Some((Route::TheHiveQuery, true))
        );
        assert_eq!(route(&Method::POST, "/other"), None);
    }

    #[test]
    fn faults_are_drawn_in_proportion_and_repeatably() {
        let mk = || Shared {
            cfg: ReceiverConfig::default(),
            webhook_key: vec![],
            faults: Mutex::new((
                Faults {
                    p429: 0.25,
                    p500: 0.25,
                    p_lost: 0.25,
                    ..Default::default()
                },
                ChaCha8Rng::seed_from_u64(7),
            )),
            rec: Mutex::new(Records::default()),
            limits: Mutex::new(Limits::default()),
        };
        let (a, b) = (mk(), mk());
        let sa: Vec<_> = (0..400).map(|_| a.draw().0).collect();
        let sb: Vec<_> = (0..400).map(|_| b.draw().0).collect();
        assert_eq!(sa, sb);
        for f in [
            Some(Fault::TooMany),
            Some(Fault::Internal),
            Some(Fault::Lost),
            None,
        ] {
            let n = sa.iter().filter(|x| **x == f).count();
            assert!((60..140).contains(&n), "{f:?}: {n}");
        }
        assert!(!sa.contains(&Some(Fault::Slow)));
        let none = mk();
        *none.faults.lock().unwrap() = (Faults::default(), ChaCha8Rng::seed_from_u64(1));
        assert!((0..100).all(|_| none.draw().0.is_none()));
    }
}
