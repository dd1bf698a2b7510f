//! The switch's Prometheus metrics (issue 11, item 6).

/// Every metric family of the switch, in one registry.
#[derive(Debug, Default)]
pub struct Metrics {}
