//! Standard Webhooks 1.0 to client systems: subscriptions, the outbox,
//! delivery with retry.

/// The webhook dispatcher's handle.
#[derive(Debug, Default)]
pub struct Webhooks {}
