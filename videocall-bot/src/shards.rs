//! Where participants run: `--threads` OS threads, each with its own single-threaded tokio
//! runtime (I/O driver and timers included), participants dealt to them in turn.
//!
//! A participant's wake-ups (a readable socket, a frame to send) then stay on one thread: no
//! work stealing, no worker unparking another, no task moving between cores, which on the
//! 2-core bench machine cost the bot more than reading the packets.

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Running shard threads.
#[derive(Debug)]
pub(crate) struct Shards {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Shards {
    /// Starts `count` (at least 1) shard threads.
    pub(crate) fn start(count: usize) -> std::io::Result<Self> {
        let mut shards = Self {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for n in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            shards.handles.push(runtime.handle().clone());
            shards.stops.push(stop);
            shards.threads.push(
                std::thread::Builder::new()
                    .name(format!("bot-shard-{n}"))
                    .spawn(move || {
                        let _ = runtime.block_on(stopped);
                    })?,
            );
        }
        Ok(shards)
    }

    /// Runs `task` on shard `i mod count`.
    pub(crate) fn spawn<F>(&self, i: usize, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handles[i % self.handles.len()].spawn(task)
    }

    /// Stops the threads (their tasks must be done) and waits for them.
    pub(crate) fn stop(self) {
        drop(self.stops);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
