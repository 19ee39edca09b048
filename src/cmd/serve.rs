//! `signalfoundry serve [--listen ADDR]`: the console (`crate::serve`) over this state
//! directory, until SIGTERM or SIGINT. Takes no lock and changes nothing.

use std::sync::Arc;

use crate::cmd::{Context, Failure, EXIT_OK};
use crate::serve::{auth, data, App};

pub fn run(ctx: &Context, listen: Option<&str>) -> Result<u8, Failure> {
    let cfg = &ctx.config.serve;
    let addr = cfg
        .checked_listen(listen)
        .map_err(|m| Failure::usage(anyhow::anyhow!(m)))?;
    let creds = auth::Credentials::load(cfg.token_file.as_deref(), cfg.users_file.as_deref())
        .map_err(Failure::usage)?;
    if !ctx.state_path.join("ledger.db").exists() {
        tracing::warn!(
            "serve: {} has no ledger yet; pages fill in after the first run",
            crate::store::fsx::shown(&ctx.state_path)
        );
    }
    let app = Arc::new(App {
        source: data::Source {
            state_path: ctx.state_path.clone(),
            close_after: ctx.config.incidents.close_after,
        },
        creds,
        sessions: auth::Sessions::default(),
        policy_file: ctx.config.policy.file.clone(),
        tls: cfg.tls(),
    });
    let tls = cfg.cert_file.clone().zip(cfg.key_file.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .map_err(Failure::failed)?;
    rt.block_on(async move {
        let shutdown = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        };
        crate::serve::serve(app, addr, tls, shutdown).await
    })
    .map_err(Failure::usage)?;
    Ok(EXIT_OK)
}
