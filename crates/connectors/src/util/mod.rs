//! What several connectors share: the HTTP client builder and child-process support.

pub mod child;
pub mod http;
