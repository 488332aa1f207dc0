//! The HTTP client every connector and the optimizer client share: rustls with the ring provider
//! (no OpenSSL, no aws-lc C build), installed once per process.

use std::sync::Once;

/// `User-Agent` of every request servo makes.
pub const USER_AGENT: &str = concat!("github.com/opsani/servo v", env!("CARGO_PKG_VERSION"));

/// Installs ring as rustls' process-wide crypto provider (idempotent).
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is as good for our purpose.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with servo's user agent and TLS set up.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto();
    reqwest::Client::builder().user_agent(USER_AGENT)
}
