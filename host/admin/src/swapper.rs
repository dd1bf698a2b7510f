//! The thread that compiles swapped-in plugins: one dedicated OS thread per
//! switch, not a tokio worker, at the lowest scheduling priority the OS
//! gives an unprivileged thread (nice 19 on Linux), so that compiling a new
//! version never competes at normal priority with the threads that serve
//! transactions. Engines have parallel compilation off, so all of a
//! compilation stays on this thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use thread_priority::{ThreadPriority, set_current_thread_priority};
use tokio::sync::oneshot;

/// The thread's name (in `top -H`, `ps -L`, panics).
pub const THREAD_NAME: &str = "switchyard-swap";

type Job = Box<dyn FnOnce() + Send>;

/// The swap thread: runs jobs one at a time, in order of submission.
#[derive(Debug, Clone)]
pub struct Swapper {
    jobs: mpsc::Sender<Job>,
}

/// The swap thread is gone (the switch is stopping), or a job panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the swap thread is not running")]
pub struct SwapperGone;

impl Swapper {
    /// Starts the thread; it ends once every [`Swapper`] clone is dropped.
    pub fn spawn() -> std::io::Result<Swapper> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                if let Err(e) = set_current_thread_priority(ThreadPriority::Min) {
                    tracing::warn!(error = %e,
                        "cannot lower the priority of the swap thread; swaps compile at normal priority");
                }
                for job in queue {
                    // A panicking job drops its reply: the caller sees `SwapperGone`.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(Swapper { jobs })
    }

    /// Runs `job` on the swap thread and waits for its result without
    /// blocking the caller's (async) thread.
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, SwapperGone> {
        let (reply, result) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = reply.send(job());
            }))
            .map_err(|_| SwapperGone)?;
        result.await.map_err(|_| SwapperGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread, from `/proc/thread-self/stat`.
    fn nice() -> Option<i32> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        // Field 19 (nice), counted after the command name's closing parenthesis.
        let rest = &stat[stat.rfind(')')? + 2..];
        rest.split_whitespace().nth(16)?.parse().ok()
    }

    #[tokio::test]
    async fn jobs_run_on_a_dedicated_low_priority_thread() {
        let swapper = Swapper::spawn().unwrap();
        let caller_nice = nice();
        let (name, in_tokio, job_nice) = swapper
            .run(|| {
                (
                    std::thread::current().name().map(str::to_owned),
                    tokio::runtime::Handle::try_current().is_ok(),
                    nice(),
                )
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        assert!(!in_tokio, "the swap thread is not a tokio worker");
        if let (Some(caller), Some(job)) = (caller_nice, job_nice) {
            assert!(job > caller || job == 19, "nice {job} (caller {caller})");
        }
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_stop_the_thread() {
        let swapper = Swapper::spawn().unwrap();
        assert_eq!(
            swapper.run(|| panic!("boom")).await,
            Err::<(), _>(SwapperGone)
        );
        assert_eq!(swapper.run(|| 7).await, Ok(7));
    }
}
