//! How many service commands (`services.start`, `stop`, `restart`) one
//! host's processes may make.
//!
//! One supervisor thread serves every tenant, and each command is work
//! on it (a state change, a spawn or a CANCEL, the status copy). Without
//! a bound a tenant restarting its 200 services in a loop kept that
//! thread about 30 % busy and made 33,000 state changes a second (red
//! team S). Guarantees: a host's commands are a bucket of
//! [`COMMAND_BURST`] refilled at [`COMMANDS_PER_SEC`]; a command past it
//! is refused with `RATE_LIMITED` before anything is queued, and other
//! hosts' buckets are untouched.

use std::collections::HashMap;
use std::time::Instant;

use warren_core::rate::Bucket;

/// Commands a host may make per second, on average.
pub const COMMANDS_PER_SEC: u32 = 100;

/// Commands a host may make at once above that rate (an application
/// starting or restarting a few hundred services together).
pub const COMMAND_BURST: u32 = 256;

/// Every host's bucket.
#[derive(Debug, Default)]
pub struct CommandBudget {
    hosts: HashMap<String, Bucket>,
}

impl CommandBudget {
    /// Takes one command of `host` at `now`: false when its bucket is
    /// empty.
    pub fn take(&mut self, host: &str, now: Instant) -> bool {
        if !self.hosts.contains_key(host) {
            let full = Bucket::new(u64::from(COMMANDS_PER_SEC), u64::from(COMMAND_BURST));
            self.hosts.insert(host.to_owned(), full);
        }
        self.hosts.get_mut(host).is_some_and(|b| b.take(1, now))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_host_gets_its_burst_then_its_rate_and_no_other_host_pays() {
        let mut budget = CommandBudget::default();
        let t0 = Instant::now();
        let burst = (0..COMMAND_BURST + 10)
            .filter(|_| budget.take("a", t0))
            .count();
        assert_eq!(burst, COMMAND_BURST as usize);
        assert!(!budget.take("a", t0));
        // Another host's bucket is its own.
        assert!(budget.take("b", t0));
        // A tenth of a second refills a tenth of the rate.
        let later = t0 + Duration::from_millis(100);
        let refilled = (0..COMMANDS_PER_SEC)
            .filter(|_| budget.take("a", later))
            .count();
        assert_eq!(refilled, (COMMANDS_PER_SEC / 10) as usize);
        // Never more than the burst, however long the host waited.
        let much_later = t0 + Duration::from_secs(3600);
        let most = (0..COMMAND_BURST * 2)
            .filter(|_| budget.take("a", much_later))
            .count();
        assert_eq!(most, COMMAND_BURST as usize);
    }
}
