//! An application the optimizer server knows: its name, its token (hashed) and its optimizer
//! settings. Shared by the pure protocol ([`super::session`]) and the database ([`super::store`]).

use sha2::{Digest, Sha256};

use crate::config::optimizer::EmbeddedOptimizer;

/// An application the server optimizes.
#[derive(Clone, Debug)]
pub struct Application {
    pub id: i64,
    /// `org/app`, as in `/accounts/{org}/applications/{app}/`.
    pub name: String,
    pub(super) token_sha256: String,
    pub settings: EmbeddedOptimizer,
    pub created_at: f64,
}

impl Application {
    /// Whether `token` is this application's, compared in constant time.
    pub fn accepts(&self, token: &str) -> bool {
        constant_time_eq(token_hash(token).as_bytes(), self.token_sha256.as_bytes())
    }
}

/// Tokens are stored as SHA-256 digests: they are long random strings, so a slow password hash
/// would add latency to every request without adding safety.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new secret token: 32 random bytes from the kernel, hex-encoded behind a prefix secret scanners
/// can match (`servo_` for applications, `servo_op_` for operators).
pub fn new_token(prefix: &str) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}{hex}"))
}
