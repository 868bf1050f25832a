//! What every criterion bench file shares: its settings.

use std::time::Duration;

use criterion::Criterion;

/// Criterion with `samples` samples of 3 s each, overridable from the
/// command line (`--measurement-time`, `--sample-size`, filters).
pub fn criterion(samples: usize) -> Criterion {
    Criterion::default()
        .sample_size(samples)
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}
