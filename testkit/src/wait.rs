//! Polling with deadlines.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Generous deadline for anything cluster-wide on a slow, noisy 2-core machine.
pub const WAIT: Duration = Duration::from_secs(90);

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `f` until it returns `Ok(Some(_))`; after `timeout` fails with `what` and the last
/// error `f` returned (errors are retried: the condition may not be observable yet).
pub async fn eventually<T, E, F, Fut>(timeout: Duration, what: &str, mut f: F) -> Result<T, String>
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what} (last error: {last_err:?})"));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn polls_until_ready_and_reports_the_last_error() {
        let mut n = 0;
        let got = wait_for("three polls", Duration::from_secs(5), || {
            n += 1;
            let ready = n >= 3;
            async move { ready.then_some(n) }
        })
        .await;
        assert_eq!(got, 3);
        let err = eventually(Duration::from_millis(250), "never", || async { Err::<Option<()>, _>("boom") })
            .await
            .expect_err("times out");
        assert!(err.contains("never") && err.contains("boom"), "{err}");
    }
}
