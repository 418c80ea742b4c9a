//! The load harness: a mock upstream, `usagepanda serve` in front of it, and a closed-loop
//! HTTP/1.1 load generator, all on loopback. Prints one table: latency percentiles and
//! throughput of each scenario, and the proxy's added latency and relative throughput,
//! measured side by side in the same run.
//!
//! ```text
//! cargo run --release -p usagepanda-benches --bin load [-- --seconds 5 --connections 64]
//! ```
//!
//! The proxy and the mock upstream each run as their own process with one worker thread
//! (pinned to CPU 0 and CPU 1 when `taskset` is available and `USAGEPANDA_LOAD_PIN` is not
//! `0`), so "direct" and "through the proxy" both cross processes and the difference is the
//! proxy's own hop and work. The load generator runs in this process.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A realistic chat answer (~600 bytes).
const ANSWER: &str = r#"{"id":"chatcmpl-9xYzAbCdEfGhIjKlMnOpQrStUv","object":"chat.completion","created":1732761600,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Sure. The quarterly report shows revenue up eight percent, driven mostly by the new subscription tier. Costs stayed flat, so the margin improved by about two points. The main risk is churn among small customers, which rose slightly in the last month. I would suggest a short survey to understand why.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":212,"completion_tokens":64,"total_tokens":276},"system_fingerprint":"fp_0ba0d124f1"}"#;

fn request_body(stream: bool) -> String {
    serde_json::json!({
        "model": "gpt-4o-mini",
        "max_tokens": 256,
        "user": "user-1234",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are a concise analyst for Acme Corp. ||Never reveal the internal codename Bluebird.|| Answer in plain English."},
            {"role": "user", "content": "Summarise the quarterly report for the board in a few sentences: revenue, costs, margin and the main risk. Keep it short and avoid jargon, the audience is not technical."}
        ]
    })
    .to_string()
}

fn sse_body() -> String {
    let words = [
        "Sure.",
        " Revenue",
        " is",
        " up",
        " eight",
        " percent,",
        " costs",
        " flat,",
        " margin",
        " better.",
    ];
    let mut out = String::new();
    for w in words {
        let event = serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]});
        out.push_str(&format!("data: {event}\n\n"));
    }
    let last = serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    out.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
    out
}

// Both proxies keep the default stats sink (one JSON line per exchange on stdout, which the
// harness sends to /dev/null): logging is part of what a user runs.
const PASS_THROUGH: &str = "LOCAL_MODE = true\n";
const ALL_POLICIES: &str = r#"LOCAL_MODE = true
POLICY_MAX_TOKENS = 1024
POLICY_ENFORCE_USER_IDS = true
POLICY_REQUEST_WORDLIST = "profanity:redact,adult:block,dan:block"
POLICY_RESPONSE_WORDLIST = "profanity:redact,adult:redact,dan:audit"
POLICY_PROMPT_REFLECTION = "audit"
"#;

async fn mock_upstream() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sse = Bytes::from(sse_body());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let sse = sse.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let sse = sse.clone();
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let stream = memchr(&body, b"\"stream\":true");
                        let response = if stream {
                            Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(Full::new(sse))
                        } else {
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(ANSWER.as_bytes())))
                        };
                        Ok::<_, Infallible>(response.unwrap_or_default())
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn memchr(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("USAGEPANDA_BIN") {
        return Ok(PathBuf::from(path));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-q", "-p", "usagepanda-cli"])
        .current_dir(&root)
        .status()
        .context("building usagepanda")?;
    if !status.success() {
        bail!("cargo build of usagepanda-cli failed");
    }
    Ok(root.join("target/release/usagepanda"))
}

async fn start_proxy(
    bin: &std::path::Path,
    config: &str,
    upstream: SocketAddr,
    dir: &std::path::Path,
    name: &str,
) -> Result<Served> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("{config}LLM_API_BASE_PATH = \"http://{upstream}/v1\"\n"),
    )?;
    let mut command = pin_command(bin, "0");
    command
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .env("TOKIO_WORKER_THREADS", "1")
        .env("OPENAI_API_KEY", "sk-load-test")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().context("starting usagepanda serve")?;
    let stderr = child.stderr.take().context("stderr")?;
    let stderr = tokio::process::ChildStderr::from_std(stderr)?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr: String = rest
                    .chars()
                    .take_while(|c| !matches!(c, '"' | ' '))
                    .collect();
                return Ok::<_, anyhow::Error>(addr.parse::<SocketAddr>()?);
            }
        }
        bail!("usagepanda serve exited before listening")
    })
    .await
    .context("waiting for usagepanda serve")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Served { child, addr })
}

/// One scenario's samples (latency to the full answer, or to the first body byte).
struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Run {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[idx.min(sorted.len() - 1)]
    }
    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

async fn drive(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    stream: bool,
) -> Result<Run> {
    let body = Bytes::from(request_body(stream));
    let deadline = Instant::now() + duration;
    let warmup = Instant::now() + duration / 5;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let req = Request::post("/v1/chat/completions")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .header("authorization", "Bearer sk-load-test")
                    .body(Full::new(body.clone()))?;
                let t0 = Instant::now();
                let response = sender.send_request(req).await?;
                let mut body = response.into_body();
                let mut first = None;
                while let Some(frame) = body.frame().await {
                    let frame = frame?;
                    if first.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                        first = Some(t0.elapsed());
                    }
                }
                let total = t0.elapsed();
                if t0 >= warmup {
                    samples.push(if stream {
                        first.unwrap_or(total)
                    } else {
                        total
                    });
                }
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().saturating_sub(duration / 5);
    Ok(Run { latencies, elapsed })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `load --mock`: serve the mock upstream and print its address.
async fn run_mock() -> Result<()> {
    let addr = mock_upstream().await?;
    println!("mock listening on {addr}");
    std::future::pending::<()>().await;
    Ok(())
}

/// Whether the servers are pinned to CPUs (`taskset` exists and `USAGEPANDA_LOAD_PIN` is not
/// `0`).
fn pinning() -> bool {
    std::env::var("USAGEPANDA_LOAD_PIN").map_or(true, |v| v != "0")
        && Command::new("taskset").arg("--version").output().is_ok()
}

fn pin_command(program: &std::path::Path, cpu: &str) -> Command {
    if pinning() {
        let mut c = Command::new("taskset");
        c.args(["-c", cpu]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Starts the mock upstream as its own process (this binary with `--mock`).
async fn start_mock() -> Result<Served> {
    let exe = std::env::current_exe().context("own path")?;
    let mut child = pin_command(&exe, "1")
        .arg("--mock")
        .env("TOKIO_WORKER_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the mock upstream")?;
    let stdout = child.stdout.take().context("stdout")?;
    let stdout = tokio::process::ChildStdout::from_std(stdout)?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("mock listening on ") {
                return Ok::<_, anyhow::Error>(rest.trim().parse::<SocketAddr>()?);
            }
        }
        bail!("the mock exited before listening")
    })
    .await
    .context("waiting for the mock")??;
    Ok(Served { child, addr })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--mock") {
        return run_mock().await;
    }
    let mut seconds = 5u64;
    let mut connections = 64usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--connections" => connections = args.next().context("--connections N")?.parse()?,
            "--mock" => {}
            other => bail!("unknown argument `{other}` (expected --seconds N, --connections N)"),
        }
    }
    let duration = Duration::from_secs(seconds);
    let bin = binary()?;
    let dir = std::env::temp_dir().join(format!("usagepanda-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mock = start_mock().await?;
    let upstream = mock.addr;
    let plain = start_proxy(&bin, PASS_THROUGH, upstream, &dir, "pass-through").await?;
    let policies = start_proxy(&bin, ALL_POLICIES, upstream, &dir, "all-policies").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_plain = rss_kib(plain.child.id());
    let idle_policies = rss_kib(policies.child.id());

    let targets = [
        ("direct", upstream),
        ("pass-through", plain.addr),
        ("all policies", policies.addr),
    ];
    let placement = if pinning() {
        "proxy (CPU 0) and mock (CPU 1)"
    } else {
        "proxy and mock (not pinned)"
    };
    println!(
        "usagepanda load harness: {seconds} s per scenario (first 20% discarded), loopback; {placement} each a process with 1 worker"
    );
    println!();
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>12} {:>12} {:>10}",
        "scenario", "p50 µs", "p90 µs", "p99 µs", "req/s", "added p50", "added p99"
    );
    let mut results = Vec::new();
    for (conns, stream, label) in [
        (1usize, false, "1 conn"),
        (connections, false, "64 conn"),
        (1, true, "stream ttfb"),
    ] {
        let mut direct: Option<Run> = None;
        for (name, addr) in targets {
            let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let pid = if addr == plain.addr {
                Some(plain.child.id())
            } else if addr == policies.addr {
                Some(policies.child.id())
            } else {
                None
            };
            let watcher = pid.map(|pid| {
                let peak = peak.clone();
                tokio::spawn(async move {
                    loop {
                        if let Some(rss) = rss_kib(pid) {
                            peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            });
            let run = drive(addr, conns, duration, stream).await?;
            if let Some(w) = watcher {
                w.abort();
            }
            let label = format!("{label} {name}");
            let (added50, added99) = match &direct {
                Some(d) => (
                    format!("{:+.1}", us(run.percentile(0.5)) - us(d.percentile(0.5))),
                    format!("{:+.1}", us(run.percentile(0.99)) - us(d.percentile(0.99))),
                ),
                None => ("".to_owned(), "".to_owned()),
            };
            let ratio = direct.as_ref().map(|d| run.rps() / d.rps());
            println!(
                "{:<26} {:>10.1} {:>10.1} {:>10.1} {:>12.0} {:>12} {:>10}{}",
                label,
                us(run.percentile(0.5)),
                us(run.percentile(0.9)),
                us(run.percentile(0.99)),
                run.rps(),
                added50,
                added99,
                ratio
                    .map(|r| format!("  ({:.0}% of direct req/s)", r * 100.0))
                    .unwrap_or_default()
            );
            let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
            results.push((label, peak));
            if direct.is_none() {
                direct = Some(run);
            }
        }
    }
    println!();
    println!(
        "proxy RSS: idle {} KiB (pass-through), {} KiB (all policies)",
        idle_plain.unwrap_or(0),
        idle_policies.unwrap_or(0)
    );
    for (label, peak) in results.iter().filter(|(_, p)| *p > 0) {
        println!("  peak RSS during {label}: {peak} KiB");
    }
    drop(plain);
    drop(policies);
    drop(mock);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
