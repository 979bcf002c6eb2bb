//! The clients a drill measures with, on this machine: a read through the VIP with admin.conf
//! (verified against the cluster CA) and an etcd write, each every 100 ms, until told to stop.

use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::series::Sample;
use crate::etcd::{self, ClientTls};
use crate::kube::ApiClient;

/// How often each client sends a request.
pub const EVERY: Duration = Duration::from_millis(100);
/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// What the API client reads: one object, from etcd (a quorum read), as any client would.
pub const API_READ: &str = "/api/v1/namespaces/default";
/// The key the etcd client writes (outside Kubernetes' `/registry`).
pub const ETCD_KEY: &[u8] = b"/kinit/drill/heartbeat";

/// What a loop saw: its samples and its first error.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub samples: Vec<Sample>,
    pub first_error: Option<String>,
}

impl Recorded {
    fn note(&mut self, clock: Instant, result: Result<(), String>) {
        let ok = result.is_ok();
        if let Err(e) = result
            && self.first_error.is_none()
        {
            self.first_error = Some(e);
        }
        self.samples.push(Sample {
            at: clock.elapsed(),
            ok,
        });
    }
}

fn ticker() -> tokio::time::Interval {
    let mut t = tokio::time::interval(EVERY);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// GET [`API_READ`] through `client`'s server (the VIP) until `stop`.
pub async fn api_loop(client: ApiClient, clock: Instant, stop: CancellationToken) -> Recorded {
    let mut rec = Recorded::default();
    let mut tick = ticker();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return rec,
            _ = tick.tick() => {}
        }
        let result = client
            .get_json(API_READ, REQUEST_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        rec.note(clock, result);
    }
}

/// One etcd write every tick, as a client with every endpoint would: the endpoint that
/// answered last first, then the others; a write fails when none takes it.
pub async fn etcd_loop(
    tls: ClientTls,
    endpoints: Vec<String>,
    clock: Instant,
    stop: CancellationToken,
) -> Recorded {
    let mut rec = Recorded::default();
    let mut tick = ticker();
    let mut first = 0usize;
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return rec,
            _ = tick.tick() => {}
        }
        n += 1;
        let value = n.to_string();
        let mut result = Err("no etcd endpoint".to_string());
        for i in 0..endpoints.len() {
            let at = (first + i) % endpoints.len();
            match etcd::put(
                &tls,
                &endpoints[at],
                ETCD_KEY,
                value.as_bytes(),
                REQUEST_TIMEOUT,
            )
            .await
            {
                Ok(()) => {
                    first = at;
                    result = Ok(());
                    break;
                }
                Err(e) => result = Err(e.to_string()),
            }
        }
        rec.note(clock, result);
    }
}
