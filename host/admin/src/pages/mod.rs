//! The server-rendered pages of the web UI.

pub mod layout;
