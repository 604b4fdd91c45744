//! One worker thread per loaded model, fed by a bounded queue, batching dynamically.
//!
//! Shaped after TEI's backend: a command sent over a channel, the reply over a
//! `oneshot`. The model itself is plain synchronous code implementing [`BatchModel`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

/// A synchronous model that computes many requests at once.
pub trait BatchModel: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;

    /// The work a request adds to a batch (tokens for text models, rows for tensors).
    fn cost(request: &Self::Request) -> usize;

    /// Runs a batch; returns one result per request, in order.
    fn run(&mut self, requests: Vec<Self::Request>) -> Vec<Result<Self::Response, String>>;

    /// Runs once after loading so the first real request is not slow.
    fn warm_up(&mut self) {}
}

/// How the worker forms batches and how much may wait.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Requests that may wait in the queue; more are refused at once.
    pub queue_capacity: usize,
    /// Upper bound on the summed cost of one batch (one oversized request still runs alone).
    pub max_batch_cost: usize,
    /// Upper bound on requests in one batch.
    pub max_batch_requests: usize,
    /// How long the worker waits for more requests once it has some. Zero by default:
    /// while a batch computes, new requests queue up and form the next batch anyway, so
    /// waiting only adds latency to a lone request (it cost ~2 ms of single-sentence p50).
    pub max_wait: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            queue_capacity: 256,
            max_batch_cost: 16_384,
            max_batch_requests: 64,
            max_wait: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferenceError {
    #[error("the model's queue is full")]
    QueueFull,
    #[error("the model is not running")]
    Stopped,
    #[error("inference failed: {0}")]
    Failed(String),
}

struct Job<M: BatchModel> {
    request: M::Request,
    reply: oneshot::Sender<Result<M::Response, String>>,
    enqueued: Instant,
}

/// The async side of a worker; cheap to clone. Dropping every handle stops the thread.
pub struct WorkerHandle<M: BatchModel> {
    sender: mpsc::Sender<Job<M>>,
    in_flight: Arc<AtomicUsize>,
    /// The policy's `max_batch_cost`; see [`WorkerHandle::max_batch_cost`].
    max_batch_cost: usize,
}

impl<M: BatchModel> Clone for WorkerHandle<M> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            max_batch_cost: self.max_batch_cost,
            in_flight: self.in_flight.clone(),
        }
    }
}

impl<M: BatchModel> WorkerHandle<M> {
    /// Starts the worker thread, warms the model up, and returns once it is warm.
    pub fn spawn(name: &str, mut model: M, policy: BatchPolicy) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel(policy.queue_capacity.max(1));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counter = in_flight.clone();
        let (warm_tx, warm_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("model-{name}"))
            .spawn(move || {
                model.warm_up();
                let _ = warm_tx.send(());
                run_worker(model, receiver, policy, counter);
            })?;
        // The thread only fails to send when it panicked during warm-up.
        warm_rx
            .recv()
            .map_err(|_| std::io::Error::other("the model failed during warm-up"))?;
        Ok(Self {
            sender,
            in_flight,
            max_batch_cost: policy.max_batch_cost,
        })
    }

    /// Queues a request and waits for its result. Refuses at once when the queue is
    /// full. Dropping the returned future (client gone) makes the worker skip it.
    pub async fn call(&self, request: M::Request) -> Result<M::Response, InferenceError> {
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            request,
            reply,
            enqueued: Instant::now(),
        };
        self.sender.try_send(job).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => InferenceError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => InferenceError::Stopped,
        })?;
        match receiver.await {
            Ok(result) => result.map_err(InferenceError::Failed),
            Err(_) => Err(InferenceError::Stopped),
        }
    }

    /// The largest cost the worker puts in one batch. A caller with more work than that
    /// does better to queue it in parts of this size, one after another: other
    /// callers' requests are batched between them, and when the caller goes away (a
    /// deadline) the parts not yet started are never computed.
    pub fn max_batch_cost(&self) -> usize {
        self.max_batch_cost
    }

    /// Requests queued or being computed right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
            + (self.sender.max_capacity() - self.sender.capacity())
    }
}

fn run_worker<M: BatchModel>(
    mut model: M,
    mut receiver: mpsc::Receiver<Job<M>>,
    policy: BatchPolicy,
    in_flight: Arc<AtomicUsize>,
) {
    let mut pending: Option<Job<M>> = None;
    loop {
        let first = match pending.take() {
            Some(job) => job,
            None => match receiver.blocking_recv() {
                Some(job) => job,
                None => return,
            },
        };
        let mut batch = vec![first];
        let mut cost = M::cost(&batch[0].request);
        let deadline = Instant::now() + policy.max_wait;
        // Gather what is already waiting, and wait briefly for more, up to the budget.
        while batch.len() < policy.max_batch_requests && cost < policy.max_batch_cost {
            let job = match receiver.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    std::thread::sleep((deadline - now).min(Duration::from_micros(200)));
                    continue;
                }
            };
            let job_cost = M::cost(&job.request);
            if cost + job_cost > policy.max_batch_cost {
                pending = Some(job);
                break;
            }
            cost += job_cost;
            batch.push(job);
        }
        // A caller that went away no longer needs its result: skip the work.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        in_flight.fetch_add(batch.len(), Ordering::Relaxed);
        let waited = batch
            .iter()
            .map(|j| j.enqueued.elapsed())
            .max()
            .unwrap_or_default();
        metrics::histogram!("charter_inference_queue_seconds").record(waited.as_secs_f64());
        metrics::histogram!("charter_inference_batch_requests").record(batch.len() as f64);
        let (requests, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|j| (j.request, j.reply)).unzip();
        let n = requests.len();
        let started = Instant::now();
        let results =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.run(requests)));
        metrics::histogram!("charter_inference_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        match results {
            Ok(results) if results.len() == n => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Ok(_) => {
                for reply in replies {
                    let _ =
                        reply.send(Err("the model returned the wrong number of results".into()));
                }
            }
            Err(_) => {
                tracing::error!("model panicked while computing a batch");
                for reply in replies {
                    let _ = reply.send(Err("the model failed on this batch".into()));
                }
            }
        }
        in_flight.fetch_sub(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Doubles numbers; records batch sizes; sleeps to let a queue build up.
    struct Doubler {
        batches: Arc<std::sync::Mutex<Vec<usize>>>,
        delay: Duration,
    }

    impl BatchModel for Doubler {
        type Request = u32;
        type Response = u32;
        fn cost(_: &u32) -> usize {
            1
        }
        fn run(&mut self, requests: Vec<u32>) -> Vec<Result<u32, String>> {
            self.batches.lock().unwrap().push(requests.len());
            std::thread::sleep(self.delay);
            requests
                .into_iter()
                .map(|r| {
                    if r == 13 {
                        Err("unlucky".into())
                    } else {
                        Ok(r * 2)
                    }
                })
                .collect()
        }
    }

    fn spawn(
        capacity: usize,
        delay_ms: u64,
    ) -> (WorkerHandle<Doubler>, Arc<std::sync::Mutex<Vec<usize>>>) {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let model = Doubler {
            batches: batches.clone(),
            delay: Duration::from_millis(delay_ms),
        };
        let policy = BatchPolicy {
            queue_capacity: capacity,
            max_batch_cost: 8,
            max_batch_requests: 8,
            max_wait: Duration::from_millis(5),
        };
        (WorkerHandle::spawn("test", model, policy).unwrap(), batches)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_concurrent_requests_and_keeps_results_apart() {
        let (handle, batches) = spawn(64, 20);
        let calls: Vec<_> = (0..20u32)
            .map(|i| {
                let h = handle.clone();
                tokio::spawn(async move { (i, h.call(i).await) })
            })
            .collect();
        for call in calls {
            let (i, result) = call.await.unwrap();
            if i == 13 {
                assert_eq!(result, Err(InferenceError::Failed("unlucky".into())));
            } else {
                assert_eq!(result, Ok(i * 2));
            }
        }
        let batches = batches.lock().unwrap();
        assert!(batches.iter().all(|&n| n <= 8), "{batches:?}");
        assert!(
            batches.iter().any(|&n| n > 1),
            "no batching happened: {batches:?}"
        );
        assert_eq!(batches.iter().sum::<usize>(), 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_refused_at_once() {
        let (handle, _) = spawn(2, 200);
        let mut calls = Vec::new();
        for i in 0..12u32 {
            let h = handle.clone();
            calls.push(tokio::spawn(async move { h.call(i).await }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut refused = 0;
        for call in calls {
            if call.await.unwrap() == Err(InferenceError::QueueFull) {
                refused += 1;
            }
        }
        assert!(refused > 0, "a queue of 2 took 12 slow requests");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_requests_are_not_computed() {
        let (handle, batches) = spawn(64, 100);
        // Occupy the worker, then queue requests and abandon them.
        let busy = {
            let h = handle.clone();
            tokio::spawn(async move { h.call(1).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..5u32 {
            let h = handle.clone();
            let _ = tokio::time::timeout(Duration::from_millis(1), async move { h.call(i).await })
                .await;
        }
        assert_eq!(busy.await.unwrap(), Ok(2));
        assert_eq!(handle.call(3).await, Ok(6));
        let computed: usize = batches.lock().unwrap().iter().sum();
        assert_eq!(computed, 2, "abandoned requests were computed");
    }
}
