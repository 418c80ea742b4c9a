//! The bundled proxy, wired by hand from the library parts (what `usagepanda serve` does).
//!
//! ```text
//! cargo run -p usagepanda-examples --example proxy -- [CONFIG.toml] [LISTEN_ADDR]
//! curl http://127.0.0.1:9000/v1/chat/completions -H "Authorization: Bearer $OPENAI_API_KEY" \
//!      -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]}'
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use usagepanda_core::{Config, Policy};
use usagepanda_http::{
    ConfigSource, Driver, HyperUpstream, HyperUpstreamOptions, Proxy, ProxyOptions, RetryPolicy,
    StdoutSink, Upstream, serve,
};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let config = match args.next() {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            Config::from_toml(&text)?
        }
        None => Config {
            local_mode: true,
            ..Config::default()
        },
    };
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9000".to_owned());

    let upstream: Arc<dyn Upstream> =
        Arc::new(HyperUpstream::new(&HyperUpstreamOptions::default()));
    let driver = Driver {
        upstream: upstream.clone(),
        retry: RetryPolicy::default(),
        timeout: Duration::from_secs(config.upstream_timeout_secs),
        max_response_bytes: 64 * 1024 * 1024,
    };
    let options = ProxyOptions::from_config(&config);
    let source = ConfigSource::from_policy(Policy::new(config)?, upstream)?;
    let proxy = Proxy::new(source, driver, Arc::new(StdoutSink), options);

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("proxy listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve(listener, proxy, shutdown, Duration::from_secs(30)).await?;
    Ok(())
}
