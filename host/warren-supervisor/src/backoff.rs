//! Restart delays: exponential backoff with a cap and random jitter.

use std::time::Duration;

use warren_config::RestartPolicy;

/// The delay before restart attempt `attempt` (1 for the first), without jitter:
/// `initial_delay * backoff_factor^(attempt-1)`, capped at `max_delay`.
pub fn base_delay(policy: &RestartPolicy, attempt: u32) -> Duration {
    let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    let secs = policy.initial_delay.as_secs_f64() * policy.backoff_factor.powi(exponent);
    let capped = secs.min(policy.max_delay.as_secs_f64());
    Duration::try_from_secs_f64(capped).unwrap_or(policy.max_delay)
}

/// The delay with jitter: `base * (1 + jitter * u)` for `u` uniform in [-1, 1),
/// still capped at `max_delay`.
pub fn delay(policy: &RestartPolicy, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    let base = base_delay(policy, attempt).as_secs_f64();
    let spread = policy.jitter * (rng.f64() * 2.0 - 1.0);
    let secs = (base * (1.0 + spread)).clamp(0.0, policy.max_delay.as_secs_f64());
    Duration::try_from_secs_f64(secs).unwrap_or(policy.max_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            backoff_factor: 2.0,
            jitter: 0.0,
            ..RestartPolicy::default()
        }
    }

    #[test]
    fn doubles_and_caps() {
        let p = policy();
        let ms: Vec<u128> = (1..=6).map(|a| base_delay(&p, a).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RestartPolicy {
            jitter: 0.1,
            ..policy()
        };
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let d = delay(&p, 2, &mut rng).as_secs_f64();
            assert!((0.18..=0.22).contains(&d), "{d}");
        }
    }
}
