//! A shard-local, set-once event: tasks of one shard wait for it, code of the same
//! shard sets it. No atomics and no cross-thread wake-ups; a shard learns about other
//! shards' events through mesh messages and sets its own copy.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
};

/// Set-once flag whose waiters are woken when it is set.
#[derive(Debug, Default)]
pub(crate) struct LocalEvent {
    is_set: Cell<bool>,
    /// One slot per live [`Wait`] future (freed when it resolves or is dropped), so
    /// re-creating a wait in a loop does not grow this.
    waiters: RefCell<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl LocalEvent {
    pub(crate) fn is_set(&self) -> bool {
        self.is_set.get()
    }

    /// Sets the event and wakes every waiter; later calls do nothing.
    pub(crate) fn set(&self) {
        if self.is_set.replace(true) {
            return;
        }
        // Take the wakers out before waking: a woken task may run code that touches
        // this event again.
        let slots = std::mem::take(&mut self.waiters.borrow_mut().slots);
        for waker in slots.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Resolves once the event is set.
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait {
            event: self,
            slot: None,
        }
    }

    fn register(&self, slot: &mut Option<usize>, waker: &Waker) {
        let mut waiters = self.waiters.borrow_mut();
        match *slot {
            Some(index) => match &mut waiters.slots[index] {
                Some(current) if current.will_wake(waker) => {}
                entry => *entry = Some(waker.clone()),
            },
            None => {
                let index = match waiters.free.pop() {
                    Some(index) => {
                        waiters.slots[index] = Some(waker.clone());
                        index
                    }
                    None => {
                        waiters.slots.push(Some(waker.clone()));
                        waiters.slots.len() - 1
                    }
                };
                *slot = Some(index);
            }
        }
    }

    fn unregister(&self, slot: usize) {
        if self.is_set.get() {
            // `set` already emptied the table; the slot number is stale.
            return;
        }
        let mut waiters = self.waiters.borrow_mut();
        waiters.slots[slot] = None;
        waiters.free.push(slot);
    }
}

/// Future returned by [`LocalEvent::wait`].
#[derive(Debug)]
pub(crate) struct Wait<'a> {
    event: &'a LocalEvent,
    slot: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.event.is_set() {
            if let Some(slot) = this.slot.take() {
                this.event.unregister(slot);
            }
            return Poll::Ready(());
        }
        this.event.register(&mut this.slot, cx.waker());
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.event.unregister(slot);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn waiters_resolve_once_set() {
        let event = LocalEvent::default();
        let mut first = Box::pin(event.wait());
        let mut second = Box::pin(event.wait());
        assert!(future::block_on(future::poll_once(&mut first)).is_none());
        assert!(future::block_on(future::poll_once(&mut second)).is_none());
        event.set();
        assert!(future::block_on(future::poll_once(&mut first)).is_some());
        assert!(future::block_on(future::poll_once(&mut second)).is_some());
        assert!(future::block_on(future::poll_once(event.wait())).is_some());
    }

    #[test]
    fn dropped_waits_free_their_slot() {
        let event = LocalEvent::default();
        for _ in 0..100 {
            let mut wait = Box::pin(event.wait());
            assert!(future::block_on(future::poll_once(&mut wait)).is_none());
        }
        assert_eq!(event.waiters.borrow().slots.len(), 1);
    }
}
