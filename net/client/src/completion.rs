//! A one-shot completion: a value set once by one thread and received by another, either
//! by `.await` (any runtime: the setter wakes the stored `Waker`) or by blocking on a
//! condvar. Hand-written so that the client needs no futures crate or runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

struct State<T> {
    value: Option<T>,
    /// Set once `value` was taken: a second take would be a bug.
    taken: bool,
    waker: Option<Waker>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves a consistent state (plain fields).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending half: completes the paired [`Pending`] once.
pub(crate) struct Completer<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half: a future, or a value to block on.
pub struct Pending<T> {
    shared: Arc<Shared<T>>,
}

/// A new, unset completion.
pub(crate) fn completion<T>() -> (Completer<T>, Pending<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            value: None,
            taken: false,
            waker: None,
        }),
        ready: Condvar::new(),
    });
    (
        Completer {
            shared: shared.clone(),
        },
        Pending { shared },
    )
}

impl<T> Completer<T> {
    /// Set the value and wake the receiver. Later calls are ignored (first wins).
    pub(crate) fn complete(self, value: T) {
        let waker = {
            let mut state = self.shared.lock();
            if state.value.is_some() || state.taken {
                return;
            }
            state.value = Some(value);
            state.waker.take()
        };
        self.shared.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Pending<T> {
    /// A completion that is already set.
    pub(crate) fn ready(value: T) -> Pending<T> {
        let (completer, pending) = completion();
        completer.complete(value);
        pending
    }

    /// Block the calling thread until the value is set. Do not call from inside an async
    /// runtime's worker thread; `.await` instead.
    pub fn wait(self) -> T {
        self.wait_ref()
    }

    /// [`wait`](Self::wait) through a borrow, for wrappers that own a `Pending`.
    pub(crate) fn wait_ref(&self) -> T {
        let mut state = self.shared.lock();
        loop {
            if let Some(value) = state.value.take() {
                state.taken = true;
                return value;
            }
            state = self
                .shared
                .ready
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// [`wait`](Self::wait) for at most `timeout`; gives `self` back if it ran out.
    pub fn wait_timeout(self, timeout: Duration) -> Result<T, Pending<T>> {
        let deadline = Instant::now() + timeout;
        {
            let mut state = self.shared.lock();
            loop {
                if let Some(value) = state.value.take() {
                    state.taken = true;
                    return Ok(value);
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                state = self
                    .shared
                    .ready
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        Err(self)
    }

    /// The value if it is set, without blocking.
    pub fn try_take(&mut self) -> Option<T> {
        let mut state = self.shared.lock();
        let value = state.value.take();
        state.taken |= value.is_some();
        value
    }
}

impl<T> Future for Pending<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.shared.lock();
        if let Some(value) = state.value.take() {
            state.taken = true;
            return Poll::Ready(value);
        }
        debug_assert!(!state.taken, "Pending polled after it completed");
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Pending")
            .field("ready", &state.value.is_some())
            .finish()
    }
}

/// Runs a future to completion on the calling thread, parking between wake-ups. For
/// the client's blocking APIs, whose futures are woken by the client's own threads.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn blocking_wait_across_threads() {
        let (c, p) = completion();
        let t = std::thread::spawn(move || c.complete(42));
        assert_eq!(p.wait(), 42);
        t.join().unwrap();
    }

    #[test]
    fn block_on_is_woken_by_another_thread() {
        let (c, p) = completion();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            c.complete("done");
        });
        assert_eq!(block_on(p), "done");
        t.join().unwrap();
    }

    #[test]
    fn wait_timeout_gives_back_pending() {
        let (c, p) = completion::<u8>();
        let p = p.wait_timeout(Duration::from_millis(5)).unwrap_err();
        c.complete(7);
        assert_eq!(p.wait_timeout(Duration::from_millis(5)).unwrap(), 7);
    }

    #[test]
    fn poll_registers_waker_and_first_complete_wins() {
        let (c, mut p) = completion();
        let counter = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut p).poll(&mut cx).is_pending());
        c.complete(1);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut p).poll(&mut cx), Poll::Ready(1));
    }
}
