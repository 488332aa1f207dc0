//! The reqwest client every connector builds on: servo's user agent and its TLS provider.

use std::sync::{Arc, OnceLock};

use servo_core::http::{USER_AGENT, install_crypto};

/// A reqwest client builder with servo's user agent and TLS set up.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto();
    reqwest::Client::builder().user_agent(USER_AGENT)
}

type Configure = Box<dyn Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync>;

/// A client built on first use. Building one reads the system's CA certificates (milliseconds of
/// PEM parsing), which commands that send no request (`servo validate`, `config`, `schema`) must
/// not pay for every mount that might. Clones share the one client.
#[derive(Clone)]
pub struct LazyClient(Arc<Lazy>);

struct Lazy {
    configure: Configure,
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl LazyClient {
    /// `configure` adds the mount's own options to [`client_builder`]'s.
    pub fn new(
        configure: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(Lazy {
            configure: Box::new(configure),
            client: OnceLock::new(),
        }))
    }

    /// The client, built now if it is the first call; an error says why it cannot be.
    pub fn get(&self) -> Result<&reqwest::Client, String> {
        let lazy = &*self.0;
        lazy.client
            .get_or_init(|| {
                (lazy.configure)(client_builder())
                    .build()
                    .map_err(|e| format!("cannot set up an HTTP client: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl std::fmt::Debug for LazyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient")
            .field("built", &self.0.client.get().is_some())
            .finish()
    }
}
