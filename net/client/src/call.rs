//! [`Call`]: the pending result of one request, decoded when its response arrives.
//! `.await` it from any runtime or [`wait`](Call::wait) for it from synchronous code.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::completion::Pending;
use crate::connection::Response;
use crate::error::Result;

type Decode<T> = Box<dyn FnOnce(Response) -> Result<T> + Send>;

/// A request in flight; resolves to its decoded result.
#[must_use = "a Call does nothing unless awaited or waited for"]
pub struct Call<T> {
    pending: Pending<Result<Response>>,
    decode: Option<Decode<T>>,
}

impl<T> Call<T> {
    pub(crate) fn new(
        pending: Pending<Result<Response>>,
        decode: impl FnOnce(Response) -> Result<T> + Send + 'static,
    ) -> Call<T> {
        Call {
            pending,
            decode: Some(Box::new(decode)),
        }
    }

    /// Blocks the calling thread until the result is there (the request's timeout
    /// bounds the wait). Not from inside an async task: `.await` there.
    pub fn wait(mut self) -> Result<T> {
        let response = self.pending.wait_ref();
        let decode = self.decode.take().expect("Call resolved twice");
        response.and_then(decode)
    }
}

impl<T> Future for Call<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let response = match Pin::new(&mut self.pending).poll(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => return Poll::Pending,
        };
        let decode = self.decode.take().expect("Call polled after completion");
        Poll::Ready(response.and_then(decode))
    }
}

impl<T> std::fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("pending", &self.pending)
            .finish()
    }
}
