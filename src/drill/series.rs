//! What a client saw, as figures: requests made, requests that failed, the longest time
//! without a successful one. Pure: samples in, figures out.

use std::time::Duration;

use serde::Serialize;

/// One request of a measuring loop: when it finished (since the drill's clock started) and
/// whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub at: Duration,
    pub ok: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopFigures {
    pub requests: u64,
    pub failed: u64,
    /// The longest time without a successful request, the window's ends included.
    pub longest_gap_ms: u64,
    /// The first error seen, for the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Figures of `samples` (in the order they finished) over the window `start..end`.
pub fn figures(samples: &[Sample], start: Duration, end: Duration) -> LoopFigures {
    let mut last_ok = start;
    let mut longest = Duration::ZERO;
    for s in samples.iter().filter(|s| s.ok) {
        longest = longest.max(s.at.saturating_sub(last_ok));
        last_ok = last_ok.max(s.at);
    }
    longest = longest.max(end.saturating_sub(last_ok));
    LoopFigures {
        requests: samples.len() as u64,
        failed: samples.iter().filter(|s| !s.ok).count() as u64,
        longest_gap_ms: longest.as_millis() as u64,
        first_error: None,
    }
}

/// How long after `since` requests succeeded again for good: the first success after the
/// last failure that finished at or after `since` (zero when none failed after it; `None`
/// when the last request failed).
pub fn answered_again(samples: &[Sample], since: Duration) -> Option<Duration> {
    let last_failure = samples.iter().rposition(|s| !s.ok && s.at >= since);
    match last_failure {
        None => Some(Duration::ZERO),
        Some(i) => samples[i + 1..]
            .iter()
            .find(|s| s.ok)
            .map(|s| s.at.saturating_sub(since)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: u64, ok: bool) -> Sample {
        Sample {
            at: Duration::from_millis(ms),
            ok,
        }
    }

    #[test]
    fn the_longest_gap_spans_failures_and_the_window_ends() {
        let samples = [
            s(100, true),
            s(200, false),
            s(300, false),
            s(900, true),
            s(1000, true),
        ];
        let f = figures(&samples, Duration::ZERO, Duration::from_millis(1100));
        assert_eq!((f.requests, f.failed, f.longest_gap_ms), (5, 2, 800));
        // Nothing succeeded at the end: the gap runs to the window's end.
        let f = figures(
            &[s(100, true), s(200, false)],
            Duration::ZERO,
            Duration::from_millis(3000),
        );
        assert_eq!(f.longest_gap_ms, 2900);
        // Nothing at all: the whole window.
        let f = figures(&[], Duration::from_millis(50), Duration::from_millis(550));
        assert_eq!(f.longest_gap_ms, 500);
    }

    #[test]
    fn answered_again_is_the_first_success_after_the_last_failure() {
        let samples = [
            s(100, true),
            s(1200, false),
            s(1300, true),
            s(1400, false),
            s(2000, true),
        ];
        assert_eq!(
            answered_again(&samples, Duration::from_millis(1000)),
            Some(Duration::from_millis(1000))
        );
        assert_eq!(
            answered_again(&samples[..1], Duration::from_millis(1000)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            answered_again(&samples[..4], Duration::from_millis(1000)),
            None
        );
    }
}
