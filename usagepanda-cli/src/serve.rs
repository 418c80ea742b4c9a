//! `usagepanda serve`: the proxy.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::net::TcpListener;
use usagepanda_core::{Config, Policy};
use usagepanda_http::{
    ApiSink, ConfigSource, Driver, FileSink, HyperUpstream, HyperUpstreamOptions, NullSink, Proxy,
    ProxyOptions, RetryPolicy, StatsSink, StdoutSink, Upstream, serve,
};

use crate::config_file::read_config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (TOML, or JSON with the original `config.js` keys). Without one, the
    /// proxy is a local-mode pass-through to `https://api.openai.com`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: String,
}

pub fn run(args: Args) -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("USAGEPANDA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("usagepanda serve: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve_main(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("usagepanda serve: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The config: the file's, or a local-mode pass-through; the environment's keys and API URL
/// win over the file's.
fn load_config(path: Option<&PathBuf>) -> Result<Config> {
    let mut config = match path {
        Some(path) => read_config(path)?,
        None => Config {
            local_mode: true,
            ..Config::default()
        },
    };
    if let Some(key) = env("OPENAI_API_KEY") {
        config.openai_api_key = Some(key);
    }
    if let Some(key) = env("USAGE_PANDA_API_KEY") {
        config.usage_panda_api_key = Some(key);
    }
    if let Some(api) = env("USAGE_PANDA_API") {
        config.usage_panda_api = api;
    }
    Ok(config)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn serve_main(args: Args) -> Result<()> {
    let config = load_config(args.config.as_ref())?;
    let upstream: Arc<dyn Upstream> = Arc::new(HyperUpstream::new(&HyperUpstreamOptions {
        connect_timeout: Duration::from_secs(config.upstream_connect_timeout_secs),
        timeout: Duration::from_secs(config.upstream_timeout_secs),
        ..HyperUpstreamOptions::default()
    }));
    let sink: Arc<dyn StatsSink> = match config.stats_sink.as_deref() {
        None | Some("stdout") => Arc::new(StdoutSink),
        Some("file") => Arc::new(FileSink::new(config.stats_file.clone().unwrap_or_default())),
        // In remote mode the proxy uploads every record with the request's key already.
        Some("api") if !config.local_mode => Arc::new(NullSink),
        Some("api") => Arc::new(
            ApiSink::new(
                upstream.clone(),
                &config.usage_panda_api,
                config.usage_panda_api_key.as_deref(),
                config.async_stats_upload,
            )
            .context("STATS_SINK = api")?,
        ),
        Some(_) => Arc::new(NullSink),
    };
    let options = ProxyOptions::from_config(&config);
    let driver = Driver {
        upstream: upstream.clone(),
        retry: RetryPolicy::default(),
        timeout: Duration::from_secs(config.upstream_timeout_secs),
        max_response_bytes: 64 * 1024 * 1024,
    };
    let policy = Policy::new(config).context("config")?;
    let source = ConfigSource::from_policy(policy, upstream).context("config")?;
    let proxy = Proxy::new(source, driver, sink, options);
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on `{}`", args.listen))?;
    let address = listener.local_addr().context("listening address")?;
    tracing::info!(%address, "usagepanda listening on {address}");
    serve(listener, proxy, shutdown_signal(), Duration::from_secs(30))
        .await
        .context("server")?;
    tracing::info!("usagepanda stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
