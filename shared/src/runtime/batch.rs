//! Batching: concurrent callers hand their request to one task, which takes whatever is waiting (up
//! to a most) and answers each caller with its own result, so that many callers cost one round trip.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// A request and where its answer goes.
type Waiter<Req, Resp> = (Req, oneshot::Sender<Resp>);

/// The callers' side of a batching task.
pub struct Batcher<Req, Resp> {
    queue: mpsc::Sender<Waiter<Req, Resp>>,
}

impl<Req, Resp> Batcher<Req, Resp>
where
    Req: Send + Sync + 'static,
    Resp: Send + 'static,
{
    /// Starts the task: each turn takes at most `most` waiting requests and `answer`s them, one
    /// answer per request in the same order.
    pub fn start<F, Fut>(most: usize, answer: F) -> Self
    where
        F: Fn(Arc<Vec<Req>>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (queue, rx) = mpsc::channel(most.max(1) * 4);
        tokio::spawn(run(rx, most.max(1), answer));
        Self { queue }
    }

    /// Hands `request` to the task and waits for its answer; `None` when the task is gone (the worker
    /// is stopping).
    pub async fn ask(&self, request: Req) -> Option<Resp> {
        let (tx, rx) = oneshot::channel();
        self.queue.send((request, tx)).await.ok()?;
        rx.await.ok()
    }
}

async fn run<Req, Resp, F, Fut>(mut rx: mpsc::Receiver<Waiter<Req, Resp>>, most: usize, answer: F)
where
    F: Fn(Arc<Vec<Req>>) -> Fut,
    Fut: Future<Output = Vec<Resp>>,
{
    let mut waiting = Vec::with_capacity(most);
    while rx.recv_many(&mut waiting, most).await > 0 {
        let (requests, callers): (Vec<Req>, Vec<oneshot::Sender<Resp>>) = waiting.drain(..).unzip();
        let answers = answer(Arc::new(requests)).await;
        // A caller that gave up meanwhile simply gets nothing.
        for (caller, response) in callers.into_iter().zip(answers) {
            let _ = caller.send(response);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_batches_and_each_gets_its_own_answer() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Arc::new(Batcher::start(8, move |requests: Arc<Vec<u32>>| {
            seen.lock().unwrap().push(requests.len());
            async move { requests.iter().map(|r| r * 10).collect() }
        }));
        let asks: Vec<_> = (0..40)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.ask(i).await) })
            })
            .collect();
        for ask in asks {
            let (i, answer) = ask.await.unwrap();
            assert_eq!(answer, Some(i * 10));
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 40);
        assert!(sizes.iter().all(|n| *n <= 8), "{sizes:?}");
    }
}
