//! When a restarted apiserver serves again: its own `/readyz` passes (verified against the
//! cluster CA, from this machine), and every haproxy has its backend server UP again, so the
//! next apiserver may go. An apiserver leaves haproxy's rotation by itself before it stops:
//! it fails `/readyz` for its `--shutdown-delay-duration` while still serving, and haproxy's
//! `/readyz` check marks it down.

use std::net::IpAddr;
use std::time::Duration;

use super::super::runner::Engine;
use super::super::verify::{self, WaitError};
use crate::components::ComponentId;
use crate::inventory::ports;

/// How long a restarted apiserver may take to be ready and back in every haproxy.
const APISERVER_BACK: Duration = Duration::from_secs(180);

impl Engine {
    pub(super) async fn apiserver_back(
        &self,
        host: &str,
        address: IpAddr,
    ) -> Result<String, WaitError> {
        let inv = &self.inventory;
        let ca_path = inv.pki_dir.join("ca.crt");
        let ca = std::fs::read(&ca_path).map_err(|e| {
            WaitError::Invalid(format!("reading the cluster CA {}: {e}", ca_path.display()))
        })?;
        let ready = verify::https(
            vec![(host.to_string(), address)],
            ports::APISERVER,
            "/readyz",
            &ca,
            APISERVER_BACK,
        )
        .await?;
        let balancers = self.targets_of(ComponentId::Haproxy);
        if balancers.is_empty() {
            return Ok(ready);
        }
        let back = verify::haproxy_backend_up(
            &self.pool,
            &balancers,
            ports::HAPROXY_STATS,
            host,
            APISERVER_BACK,
        )
        .await?;
        Ok(format!("{ready}; {back}"))
    }
}
