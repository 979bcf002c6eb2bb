//! Run the same async work over many hosts, at most `limit` at a time, one result per host.
//! A failed host does not stop the others; cancelling stops everyone.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How many hosts kinit works on at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 30;

/// How long running work may take to wind down after a cancel before it is dropped.
pub const CANCEL_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum FanoutError<E> {
    #[error(transparent)]
    Failed(E),
    #[error("cancelled")]
    Cancelled,
    #[error("internal error: the task for this host panicked: {0}")]
    Panicked(String),
}

/// Run `work` for each `(name, item)`, results in input order.
pub async fn run<T, R, E, F, Fut>(
    items: Vec<(String, T)>,
    limit: usize,
    cancel: &CancellationToken,
    work: F,
) -> Vec<(String, Result<R, FanoutError<E>>)>
where
    T: Send + 'static,
    R: Send + 'static,
    E: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let work = Arc::new(work);
    let mut names = Vec::with_capacity(items.len());
    let mut tasks = JoinSet::new();
    for (index, (name, item)) in items.into_iter().enumerate() {
        names.push(name);
        let permits = permits.clone();
        let work = work.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let result = async {
                let _permit = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(FanoutError::Cancelled),
                    permit = permits.acquire_owned() => permit.expect("never closed"),
                };
                let running = work(item);
                tokio::pin!(running);
                tokio::select! {
                    outcome = &mut running => outcome.map_err(FanoutError::Failed),
                    // Work that watches the token gets to stop cleanly (e.g. signal the remote
                    // command); work that does not is dropped after the grace period.
                    () = cancel.cancelled() => {
                        match tokio::time::timeout(CANCEL_GRACE, &mut running).await {
                            Ok(outcome) => outcome.map_err(FanoutError::Failed),
                            Err(_) => Err(FanoutError::Cancelled),
                        }
                    }
                }
            }
            .await;
            (index, result)
        });
    }
    let mut results: Vec<Option<Result<R, FanoutError<E>>>> =
        std::iter::repeat_with(|| None).take(names.len()).collect();
    let mut panics = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(e) => panics.push(e.to_string()),
        }
    }
    names
        .into_iter()
        .zip(results)
        .map(|(name, result)| {
            let result = result.unwrap_or_else(|| {
                Err(FanoutError::Panicked(
                    panics.first().cloned().unwrap_or_default(),
                ))
            });
            (name, result)
        })
        .collect()
}

/// Drive every future of `futures` at once on this task until all are done, results in their
/// order: for the few futures of one batch that borrow their caller (which [`run`]'s spawned
/// tasks cannot).
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut running: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in running.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn bounded_and_failures_are_per_host() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let items: Vec<(String, u32)> = (0..20).map(|i| (format!("h{i}"), i)).collect();
        let (r, p) = (running.clone(), peak.clone());
        let results = run(items, 4, &CancellationToken::new(), move |i| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                if i == 3 { Err("boom") } else { Ok(i * 2) }
            }
        })
        .await;
        assert_eq!(peak.load(Ordering::SeqCst), 4);
        assert_eq!(results.len(), 20);
        assert_eq!(results[0].0, "h0");
        assert!(matches!(results[3].1, Err(FanoutError::Failed("boom"))));
        assert!(matches!(results[19].1, Ok(38)));
    }

    #[tokio::test]
    async fn cancel_stops_everyone() {
        let cancel = CancellationToken::new();
        let items: Vec<(String, ())> = (0..5).map(|i| (format!("h{i}"), ())).collect();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.cancel();
        });
        let results = run(items, 2, &cancel, |()| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), ()>(())
        })
        .await;
        assert!(
            results
                .iter()
                .all(|(_, r)| matches!(r, Err(FanoutError::Cancelled)))
        );
    }

    #[tokio::test]
    async fn join_all_runs_borrowing_futures_together_results_in_order() {
        // Each future waits for all three at a barrier: run one after the other, none would
        // pass it (the timeout turns that hang into a failure).
        let barrier = tokio::sync::Barrier::new(3);
        let values = [3u32, 1, 2];
        let together = join_all(
            values
                .iter()
                .map(|v| {
                    let barrier = &barrier;
                    async move {
                        barrier.wait().await;
                        *v * 2
                    }
                })
                .collect(),
        );
        let out = tokio::time::timeout(Duration::from_secs(10), together)
            .await
            .expect("the futures ran one after the other");
        assert_eq!(out, vec![6, 2, 4]);
        assert!(
            join_all(Vec::<std::future::Ready<()>>::new())
                .await
                .is_empty()
        );
    }
}
