//! The open loop's timetable clock: a timerfd, so that a request due at
//! 12.345 ms leaves then and not at tokio's next 1 ms timer tick (a lag the
//! open loop would otherwise count in every latency).

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A one-shot timer with the resolution of the kernel's monotonic clock.
pub(crate) struct Pacer {
    fd: AsyncFd<OwnedFd>,
    armed_for: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new() -> io::Result<Pacer> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // tokio 1.54 deprecates the safe constructors because a `T` that
        // does not own its descriptor could close it while registered; an
        // `OwnedFd` owns it and lives exactly as long as the `AsyncFd`, and
        // the replacement (`register_with_interest`) is `unsafe`, which this
        // crate forbids.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(fd, Interest::READABLE)?;
        Ok(Pacer {
            fd,
            armed_for: None,
        })
    }

    /// Arms the timer for `at` (at once when that has passed); nothing to
    /// do when it is armed for `at` already.
    pub(crate) fn arm(&mut self, at: Instant) -> io::Result<()> {
        if self.armed_for == Some(at) {
            return Ok(());
        }
        // Zero would disarm the timer: the next nanosecond instead.
        let wait = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: wait.as_secs() as _,
                tv_nsec: wait.subsec_nanos() as _,
            },
        };
        timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
        self.armed_for = Some(at);
        Ok(())
    }

    /// Whether the timer is armed.
    pub(crate) fn armed(&self) -> bool {
        self.armed_for.is_some()
    }

    /// Waits until the armed time; cancel-safe.
    pub(crate) async fn fired(&mut self) -> io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(Ok(_)) => {
                    self.armed_for = None;
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_once_armed() {
        let mut p = Pacer::new().unwrap();
        assert!(!p.armed());
        let at = Instant::now() + Duration::from_millis(2);
        p.arm(at).unwrap();
        assert!(p.armed());
        p.fired().await.unwrap();
        assert!(Instant::now() >= at);
        assert!(!p.armed());
        // A time already past fires at once.
        p.arm(Instant::now() - Duration::from_millis(5)).unwrap();
        p.fired().await.unwrap();
    }
}
