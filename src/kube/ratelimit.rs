//! A client-side limit on the request rate to an API server, client-go's QPS and burst:
//! a token bucket (governor) in front of a kube client's HTTP stack, so that the cold
//! start of a big fleet does not flood the host API server. A request waits for a token;
//! none is dropped. The leader election has its own client without this limit, so a busy
//! controller never delays a lease renewal.

use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tower::{Layer, Service};

/// A layer that limits requests to `qps` per second with bursts of `burst`.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl RateLimitLayer {
    /// `None` when `qps` is 0: no limit.
    pub fn new(qps: u32, burst: u32) -> Option<Self> {
        let qps = NonZeroU32::new(qps)?;
        let burst = NonZeroU32::new(burst).unwrap_or(qps);
        Some(RateLimitLayer {
            limiter: Arc::new(RateLimiter::direct(
                Quota::per_second(qps).allow_burst(burst),
            )),
        })
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            limiter: self.limiter.clone(),
            wait: None,
            permitted: false,
        }
    }
}

pub struct RateLimited<S> {
    inner: S,
    limiter: Arc<DefaultDirectRateLimiter>,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A token is held for the next `call`.
    permitted: bool,
}

impl<S, R> Service<R> for RateLimited<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        while !self.permitted {
            if let Some(wait) = self.wait.as_mut() {
                ready!(wait.as_mut().poll(cx));
                self.wait = None;
            }
            match self.limiter.check() {
                Ok(()) => self.permitted = true,
                Err(not_until) => {
                    let d = not_until.wait_time_from(DefaultClock::default().now());
                    self.wait = Some(Box::pin(tokio::time::sleep(d)));
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.permitted = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A service that answers at once.
    struct Echo;

    impl Service<u32> for Echo {
        type Response = u32;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<u32, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, r: u32) -> Self::Future {
            std::future::ready(Ok(r))
        }
    }

    async fn send(s: &mut RateLimited<Echo>, r: u32) -> u32 {
        std::future::poll_fn(|cx| s.poll_ready(cx)).await.unwrap();
        s.call(r).await.unwrap()
    }

    #[tokio::test]
    async fn a_burst_goes_at_once_and_the_rest_waits_its_turn() {
        let layer = RateLimitLayer::new(10, 5).unwrap();
        let mut s = layer.layer(Echo);
        let t0 = std::time::Instant::now();
        for i in 0..5 {
            assert_eq!(send(&mut s, i).await, i);
        }
        // The sixth waits for a token (a tenth of a second at 10 qps); none is dropped.
        let mut sixth = std::pin::pin!(send(&mut s, 6));
        assert!(futures::poll!(sixth.as_mut()).is_pending());
        assert_eq!(sixth.await, 6);
        assert!(
            t0.elapsed() >= Duration::from_millis(50),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn zero_qps_means_no_limit() {
        assert!(RateLimitLayer::new(0, 10).is_none());
    }
}
