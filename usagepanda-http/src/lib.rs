//! HTTP adapter for the usagepanda policy core: the [`Upstream`] and [`StatsSink`] traits with
//! production implementations, the one [`Driver`] loop, the proxy server, config sources, and a
//! [`tower::Layer`] for putting the policy in front of a service's own LLM calls.

pub mod config_source;
pub mod driver;
pub mod layer;
pub mod retry;
pub mod route;
pub mod server;
pub mod stats;
pub mod stream;
pub mod upstream;

pub use config_source::{ConfigLoadError, ConfigSource};
pub use driver::{Answer, Driver};
pub use layer::{PolicyLayer, PolicyService};
pub use retry::RetryPolicy;
pub use server::{Proxy, ProxyOptions, serve};
pub use stats::{ApiSink, FileSink, MemorySink, NullSink, StatsSink, StdoutSink};
pub use upstream::{
    Body, BoxError, HyperUpstream, HyperUpstreamOptions, Upstream, UpstreamError, UpstreamRequest,
    UpstreamResponse,
};
