//! How fast the load balancer notices a failure: keepalived's VRRP advert interval and
//! haproxy's health-check interval and fall count. The templates render these numbers, and
//! `kinit drill` derives its default threshold from the same constants.

use std::time::Duration;

/// keepalived's `advert_int` (seconds).
pub const VRRP_ADVERT_INT_SECS: u64 = 1;
/// haproxy's `inter` for the apiserver backends (seconds).
pub const HAPROXY_CHECK_INTER_SECS: u64 = 1;
/// Failed checks before haproxy takes a backend out (`fall`).
pub const HAPROXY_CHECK_FALL: u64 = 2;
/// Passing checks before haproxy puts a backend back (`rise`).
pub const HAPROXY_CHECK_RISE: u64 = 2;

/// The longest a backup waits before it takes the VIP over (VRRP's master-down interval:
/// three adverts plus the skew time, at most one more advert).
pub fn vrrp_takeover() -> Duration {
    Duration::from_secs(4 * VRRP_ADVERT_INT_SECS)
}

/// How long haproxy sends requests to a failed apiserver at most: `fall` checks `inter` apart.
pub fn haproxy_detection() -> Duration {
    Duration::from_secs(HAPROXY_CHECK_INTER_SECS * HAPROXY_CHECK_FALL)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_budget_matches_the_template_numbers() {
        assert_eq!(super::vrrp_takeover().as_secs(), 4);
        assert_eq!(super::haproxy_detection().as_secs(), 2);
    }
}
