//! What every HTTP client of servo shares: one user agent, one TLS provider (rustls with ring: no
//! OpenSSL, no aws-lc C build), and one way to print a URL without its password.
//!
//! The reqwest client builder itself lives with its users (`servo-connectors`' `util::http` and the
//! optimizer client): reqwest brings tower-http along, which the contract crate keeps out.

use std::sync::Once;

use crate::units::REDACTED;

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

/// `url` with its password, if any, shown as `**********`; everything else as written.
///
/// A URL the `url` crate cannot parse keeps nothing of its user information: it may still hold a
/// password, and a message about a malformed URL must not be the place it leaks.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(parsed) => match parsed.password() {
            None => text.to_string(),
            // Replace the password where it was written, so the rest prints exactly as given.
            Some(password) => match text.find(&format!(":{password}@")) {
                Some(at) => format!(
                    "{}:{REDACTED}@{}",
                    &text[..at],
                    &text[at + password.len() + 2..]
                ),
                None => {
                    let mut parsed = parsed.clone();
                    let _ = parsed.set_password(Some(REDACTED));
                    parsed.to_string()
                }
            },
        },
        Err(_) => match text.split_once("://") {
            Some((scheme, rest)) => {
                let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                match rest[..authority_end].rsplit_once('@') {
                    Some((_, host)) => {
                        format!("{scheme}://{REDACTED}@{host}{}", &rest[authority_end..])
                    }
                    None => text.to_string(),
                }
            }
            None => text.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_masked_and_the_rest_kept_as_written() {
        assert_eq!(
            redact_url("http://bob:hunter2@proxy:3128/x"),
            "http://bob:**********@proxy:3128/x"
        );
        assert_eq!(
            redact_url("postgres://postgres:s3cret@127.0.0.1:5432/servo"),
            "postgres://postgres:**********@127.0.0.1:5432/servo"
        );
        assert_eq!(redact_url("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(redact_url("http://bob@proxy"), "http://bob@proxy");
        assert_eq!(redact_url("/var/lib/servo.db"), "/var/lib/servo.db");
    }

    #[test]
    fn unparsable_urls_lose_their_user_information() {
        assert_eq!(
            redact_url("http://bob:hunter2@proxy:99999999/x"),
            "http://**********@proxy:99999999/x"
        );
    }
}
