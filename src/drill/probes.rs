//! The clients a drill measures with, on this machine: a read through the VIP with admin.conf
//! (verified against the cluster CA) and an etcd write, each every 100 ms, until told to stop.

use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::error::DrillError;
use super::series::Sample;
use crate::etcd::{self, ClientTls};
use crate::inventory::Inventory;
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

/// The clients and the clock of one drill.
pub(super) struct Clients {
    pub(super) clock: Instant,
    stop: CancellationToken,
    api: tokio::task::JoinHandle<Recorded>,
    etcd: tokio::task::JoinHandle<Recorded>,
}

/// admin.conf's credentials, sent to the endpoint (the VIP), verified with the cluster CA.
pub(super) fn admin_client(inv: &Inventory) -> Result<ApiClient, DrillError> {
    Ok(ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf")
        .map_err(|e| DrillError::Setup(e.to_string()))?
        .at(&inv.endpoint.url()))
}

pub(super) fn start_clients(inv: &Inventory) -> Result<Clients, DrillError> {
    let api = admin_client(inv)?;
    let tls =
        ClientTls::from_pki_dir(&inv.pki_dir).map_err(|e| DrillError::Setup(e.to_string()))?;
    let endpoints = inv.etcd_members().iter().map(|m| m.client_url()).collect();
    let clock = Instant::now();
    let stop = CancellationToken::new();
    Ok(Clients {
        clock,
        api: tokio::spawn(api_loop(api, clock, stop.clone())),
        etcd: tokio::spawn(etcd_loop(tls, endpoints, clock, stop.clone())),
        stop,
    })
}

impl Clients {
    pub(super) async fn finish(self) -> (Recorded, Recorded, Duration) {
        self.stop.cancel();
        let end = self.clock.elapsed();
        let api = self.api.await.unwrap_or_default();
        let etcd = self.etcd.await.unwrap_or_default();
        (api, etcd, end)
    }
}
