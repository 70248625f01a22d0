//! A precise timer for toxic delays and the due times of retries. tokio's timer wheel has
//! millisecond granularity and rounds deadlines up, which would add up to a millisecond to
//! every latency toxic and to a retry's measured latency (counted from its due time); this
//! timer runs on its own thread with the kernel's timer slack set to zero, and wakes each
//! sleeper within tens of microseconds of its deadline. A deadline already past costs no
//! lock. (First tries are sent by the driver's own dispatcher thread.)

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

struct Timer {
    state: Mutex<State>,
    wake_thread: Condvar,
}

#[derive(Default)]
struct State {
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    wakers: BTreeMap<u64, Waker>,
    next_id: u64,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer {
            state: Mutex::default(),
            wake_thread: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("chaos-precise-timer".into())
            .spawn(move || t.run())
            .expect("the precise timer thread starts");
        t
    })
}

impl Timer {
    fn run(&self) {
        // Zero slack: the kernel may otherwise defer this thread's wake-ups by 50 us.
        let _ = nix::sys::prctl::set_timerslack(1);
        let mut st = self.state.lock().expect("timer lock poisoned");
        loop {
            let now = Instant::now();
            while let Some(&Reverse((at, id))) = st.queue.peek() {
                if at > now {
                    break;
                }
                st.queue.pop();
                if let Some(w) = st.wakers.remove(&id) {
                    w.wake();
                }
            }
            st = match st.queue.peek() {
                Some(&Reverse((at, _))) => {
                    self.wake_thread
                        .wait_timeout(st, at.saturating_duration_since(now))
                        .expect("timer lock poisoned")
                        .0
                }
                None => self.wake_thread.wait(st).expect("timer lock poisoned"),
            };
        }
    }
}

/// Sleep until `deadline`, precisely.
pub(crate) fn sleep_until(deadline: tokio::time::Instant) -> PreciseSleep {
    PreciseSleep {
        deadline: deadline.into_std(),
        id: None,
    }
}

pub(crate) struct PreciseSleep {
    deadline: Instant,
    id: Option<u64>,
}

impl Future for PreciseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some(id) = self.id.take() {
                forget(id);
            }
            return Poll::Ready(());
        }
        let t = timer();
        let mut st = t.state.lock().expect("timer lock poisoned");
        match self.id {
            Some(id) => {
                // Registered before; refresh the waker (the task may have moved).
                st.wakers.insert(id, cx.waker().clone());
            }
            None => {
                let id = st.next_id;
                st.next_id += 1;
                st.wakers.insert(id, cx.waker().clone());
                st.queue.push(Reverse((self.deadline, id)));
                self.id = Some(id);
                let earliest = st
                    .queue
                    .peek()
                    .is_some_and(|Reverse((at, _))| *at == self.deadline);
                drop(st);
                if earliest {
                    t.wake_thread.notify_one();
                }
            }
        }
        Poll::Pending
    }
}

/// Drop a sleeper's waker; its queue entry finds none when its time comes.
fn forget(id: u64) {
    timer()
        .state
        .lock()
        .expect("timer lock poisoned")
        .wakers
        .remove(&id);
}

impl Drop for PreciseSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            // The queue entry stays until its time comes and finds no waker: cheap, and it
            // spares a search of the heap.
            forget(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_at_the_deadline_not_a_millisecond_later() {
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            let start = tokio::time::Instant::now();
            sleep_until(start + Duration::from_micros(2_300)).await;
            let late = start.elapsed().saturating_sub(Duration::from_micros(2_300));
            assert!(start.elapsed() >= Duration::from_micros(2_300));
            worst = worst.max(late);
        }
        // Lenient: a loaded CI machine may be slow, but never early.
        assert!(worst < Duration::from_millis(50), "woke {worst:?} late");
    }

    #[tokio::test]
    async fn a_dropped_sleep_is_forgotten() {
        let s = sleep_until(tokio::time::Instant::now() + Duration::from_secs(60));
        let polled = tokio::time::timeout(Duration::from_millis(5), s).await;
        assert!(polled.is_err());
        sleep_until(tokio::time::Instant::now() + Duration::from_millis(1)).await;
    }
}
