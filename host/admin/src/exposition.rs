//! The Prometheus exposition of `/api/metrics`.
