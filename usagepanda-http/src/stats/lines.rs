//! A writer thread for stats lines (stdout or a file).
//!
//! `tokio::io::stdout()` and `tokio::fs::File` hand every write to the blocking pool: two
//! thread wake-ups and a context switch per record, on the request's path. Here an exchange
//! only queues its line; one thread per target writes whatever has queued up in one
//! `write` call. The queue is bounded, so a stalled reader of stdout slows the proxy down
//! instead of filling its memory, and `flush` returns once every line queued before it is
//! written (and, for a file, synced).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

/// Lines waiting for the writer at most.
const QUEUE: usize = 8192;
/// A batch is written once it is this large, even if more lines are queued.
const BATCH_BYTES: usize = 1 << 20;
/// How long the writer waits after a batch before taking the next one.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Where the lines go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The process's standard output (locked for each batch only, so other output can
    /// interleave between batches, never inside a line).
    Stdout,
    /// A file, created when missing, appended to.
    File(PathBuf),
}

enum Message {
    Line(String),
    Flush(oneshot::Sender<()>),
}

/// The sending side; the thread ends when it is dropped.
#[derive(Debug)]
pub(crate) struct LineWriter {
    queue: Option<mpsc::Sender<Message>>,
    target: Target,
}

impl LineWriter {
    /// Starts the writer thread. If no thread can be started, lines are written by the
    /// caller instead (slower, never lost).
    pub(crate) fn start(target: Target) -> LineWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread_target = target.clone();
        let started = std::thread::Builder::new()
            .name("usagepanda-stats".to_owned())
            .spawn(move || run(thread_target, rx));
        let queue = match started {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the stats writer thread; writing inline");
                None
            }
        };
        LineWriter { queue, target }
    }

    /// Queues one line (a newline is added).
    pub(crate) async fn write(&self, mut line: String) {
        line.push('\n');
        let line = match &self.queue {
            Some(queue) => match queue.send(Message::Line(line)).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(Message::Line(line))) => line,
                Err(_) => return,
            },
            None => line,
        };
        // The thread is gone: write here rather than lose the line.
        let mut out = Output::new(self.target.clone());
        out.write(line.as_bytes());
    }

    /// Waits until every line queued so far is written.
    pub(crate) async fn flush(&self) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// The open target, opened on first use and reopened after a failed write.
struct Output {
    target: Target,
    file: Option<File>,
}

impl Output {
    fn new(target: Target) -> Output {
        Output { target, file: None }
    }

    fn write(&mut self, bytes: &[u8]) {
        match &self.target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
                    tracing::warn!(error = %e, "cannot write stats records to stdout");
                }
            }
            Target::File(path) => {
                // A failed write is tried once more on a freshly opened file (the file may
                // have been rotated or its disk briefly full) before the batch is given up.
                for attempt in 0..2 {
                    if self.file.is_none() {
                        match File::options().create(true).append(true).open(path) {
                            Ok(file) => self.file = Some(file),
                            Err(e) => {
                                tracing::error!(path = %path.display(), error = %e, "cannot open the stats file");
                                return;
                            }
                        }
                    }
                    let Some(file) = &mut self.file else {
                        return;
                    };
                    match file.write_all(bytes) {
                        Ok(()) => return,
                        Err(e) => {
                            if attempt == 1 {
                                tracing::error!(path = %path.display(), error = %e, "cannot write the stats file; records lost");
                            }
                            self.file = None;
                        }
                    }
                }
            }
        }
    }

    fn sync(&mut self) {
        if let Some(file) = &self.file {
            let _ = file.sync_data();
        }
    }
}

/// The writer thread: takes everything queued, writes it in one go, answers flushes.
fn run(target: Target, mut rx: mpsc::Receiver<Message>) {
    let mut out = Output::new(target);
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Line(line) => batch.extend_from_slice(line.as_bytes()),
                Message::Flush(done) => flushed.push(done),
            }
            if batch.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            out.write(&batch);
            batch.clear();
        }
        if !flushed.is_empty() {
            out.sync();
            for done in flushed.drain(..) {
                let _ = done.send(());
            }
        }
        // Linger before looking again: lines queued meanwhile wake nobody (the receiver is not
        // waiting), so under load one wake-up serves a millisecond of records instead of each
        // record costing a futex call and a context switch. An idle queue still sleeps until
        // the next line.
        std::thread::sleep(LINGER);
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_queued_line_is_written_whole_before_flush_returns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("stats.jsonl");
        let writer = std::sync::Arc::new(LineWriter::start(Target::File(path.clone())));
        // More lines than the queue holds, from several tasks at once.
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    for i in 0..2_000 {
                        writer.write(format!("{{\"task\":{t},\"i\":{i}}}")).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        writer.flush().await;
        let text = std::fs::read_to_string(&path).expect("read back");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 16_000);
        for t in 0..8 {
            // Each task's lines arrive whole and in its order.
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("{{\"task\":{t},")))
                .collect();
            assert_eq!(mine.len(), 2_000);
            for (i, line) in mine.iter().enumerate() {
                assert_eq!(*line, format!("{{\"task\":{t},\"i\":{i}}}"));
            }
        }
    }
}
