//! A host's clock against the operator's, from the one reading the probe prints first.
//!
//! The reading was taken at some operator time between the moment the command went out and the
//! moment its first output (that reading) came back. Most of that span can be the host starting
//! the probe (sshd's fork, sudo, the shell: seconds on an emulated VM), all of it before the
//! reading; after the reading there is only the way back, which takes no longer than a round trip
//! on the same connection. So the reading is placed in [arrival - round trip, arrival] (and never
//! before the command went out), however long the host took to start: an estimate that does not
//! depend on how slow the host is, with an error bound the finding states.

use serde::Serialize;

/// Host clock minus operator clock, in seconds, as far as one reading can tell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClockSkew {
    /// The middle of the range the reading allows.
    pub offset: f64,
    /// Half the width of that range: the true offset is within `offset ± uncertainty`.
    pub uncertainty: f64,
}

impl ClockSkew {
    /// The smallest skew (absolute) the reading allows.
    pub fn at_least(&self) -> f64 {
        (self.offset.abs() - self.uncertainty).max(0.0)
    }

    /// The largest skew (absolute) the reading allows.
    pub fn at_most(&self) -> f64 {
        self.offset.abs() + self.uncertainty
    }
}

/// The operator's times around a host's clock reading, in seconds since the epoch (durations in
/// seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingTimes {
    /// The operator's clock just before the command was sent.
    pub sent: f64,
    /// When the output carrying the reading arrived.
    pub arrived: f64,
    /// How long a round trip on the same connection takes with no work on the host (opening
    /// the command's channel); `None` when the reading may not have been the first output, so
    /// nothing bounds how long it waited before coming back.
    pub round_trip: Option<f64>,
}

/// The skew `host_clock` (the host's reading) shows, given when the operator sent and received it.
pub fn estimate(host_clock: f64, t: &ReadingTimes) -> ClockSkew {
    let latest = t.arrived;
    let earliest = match t.round_trip {
        Some(rtt) => (t.arrived - rtt.max(0.0)).max(t.sent),
        None => t.sent,
    }
    .min(latest);
    ClockSkew {
        offset: host_clock - (earliest + latest) / 2.0,
        uncertainty: (latest - earliest) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_slow_start_does_not_count_as_skew() {
        // Sent at 1000; the host took 25 s to start the probe (an emulated VM, sudo), read its
        // synchronised clock at 1025.000 and the line arrived 20 ms later; a round trip takes 40 ms.
        let t = ReadingTimes {
            sent: 1000.0,
            arrived: 1025.020,
            round_trip: Some(0.040),
        };
        let s = estimate(1025.000, &t);
        assert!(close(s.offset, 0.0), "{s:?}");
        assert!(close(s.uncertainty, 0.020), "{s:?}");
        // Five seconds ahead, same timings: 5 s ± 20 ms.
        let s = estimate(1030.000, &t);
        assert!(close(s.offset, 5.0) && s.at_least() > 4.9, "{s:?}");
    }

    #[test]
    fn the_range_never_starts_before_the_command_went_out() {
        let t = ReadingTimes {
            sent: 1000.0,
            arrived: 1000.010,
            round_trip: Some(0.5),
        };
        let s = estimate(1000.005, &t);
        assert!(close(s.offset, 0.0) && close(s.uncertainty, 0.005), "{s:?}");
        // Without a round trip to go by, the whole span counts.
        let t = ReadingTimes {
            round_trip: None,
            arrived: 1004.0,
            ..t
        };
        let s = estimate(1001.0, &t);
        assert!(close(s.offset, -1.0) && close(s.uncertainty, 2.0), "{s:?}");
        assert!(close(s.at_least(), 0.0) && close(s.at_most(), 3.0));
    }
}
