//! The audit trail (PCI DSS 10.2): append-only, hash-chained.

/// The audit trail over the store's table.
#[derive(Debug, Default)]
pub struct Audit {}
