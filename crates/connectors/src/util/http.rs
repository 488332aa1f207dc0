//! The reqwest client every connector builds on: servo's user agent and its TLS provider.

use servo_core::http::{USER_AGENT, install_crypto};

/// A reqwest client builder with servo's user agent and TLS set up.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto();
    reqwest::Client::builder().user_agent(USER_AGENT)
}
