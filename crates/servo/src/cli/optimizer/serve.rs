//! `servo optimizer serve`: the protocol server.

use std::net::SocketAddr;
use std::sync::Arc;

use super::StoreArg;
use crate::cli::{CliError, CommandResult, Exit, Globals, interrupt_token};
use crate::server::session::Options;
use crate::server::{Server, serve};
use servo_core::units::{Duration, Memory};

/// Serve the optimizer: `POST /accounts/{org}/applications/{app}/servo` per application, plus
/// `/trials`, `/best`, `/report`, `/healthz`, `/metrics` and `/openapi.json`, and the operators'
/// web UI at `/` (log in with a token from `servo optimizer admin-token` or `--admin-token-file`).
///
/// Stops gracefully on SIGTERM or Ctrl-C (exit 0): requests under way finish, nothing is lost,
/// and a restarted server carries on every study where it was.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address to listen on (`0.0.0.0:8080` for every interface; port 0 picks a free one).
    #[arg(
        long,
        env = "SERVO_OPTIMIZER_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    listen: SocketAddr,

    #[command(flatten)]
    store: StoreArg,

    /// Bodies larger than this are refused with 413 (`64Ki`, `1Mi`, or bytes).
    #[arg(long, default_value = "1Mi", value_name = "SIZE")]
    max_body: Memory,

    /// How long a servo sleeps when its study is done or cannot go on, before asking again.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    sleep: Duration,

    /// A file holding an operator token for the web UI at `/` (e.g. a mounted Kubernetes secret),
    /// accepted besides those `servo optimizer admin-token` stored.
    #[arg(long, env = "SERVO_OPTIMIZER_ADMIN_TOKEN_FILE", value_name = "FILE")]
    admin_token_file: Option<std::path::PathBuf>,
}

pub async fn run(args: Args, _globals: &Globals) -> CommandResult {
    let store = args.store.open().await?;
    let shown = store.journal().path().display().to_string();
    let applications = store
        .applications()
        .await
        .map_err(|e| CliError::Failure(e.to_string()))?;
    if applications.is_empty() {
        tracing::warn!(
            "the store has no application yet: add one with `servo optimizer app create ORG/APP --store ...`"
        );
    }
    let max_body = usize::try_from(args.max_body.bytes()).unwrap_or(usize::MAX);
    let mut server = Server::new(store, Options { sleep: args.sleep });
    if let Some(path) = &args.admin_token_file {
        let token = std::fs::read_to_string(path).map_err(|e| {
            CliError::usage(format!(
                "cannot read --admin-token-file {}: {e}",
                path.display()
            ))
        })?;
        let token = token.trim();
        if token.len() < 16
            || token
                .chars()
                .any(|c| c.is_whitespace() || c == ';' || c == ',')
        {
            return Err(CliError::usage(format!(
                "--admin-token-file {}: an operator token is at least 16 characters, with no spaces, `;` or `,`",
                path.display()
            )));
        }
        server = server.with_operator_token(token);
    }
    let server = Arc::new(server);
    server
        .count_trials()
        .await
        .map_err(|e| CliError::Failure(e.to_string()))?;
    let stop = interrupt_token();
    let result = serve(server.clone(), args.listen, max_body, stop, |addr| {
        // The first line on stdout, so scripts (and tests) can learn a picked port.
        // Nobody reading stdout is no reason to stop serving.
        let _ = crate::output::print(&format!(
            "servo optimizer listening on http://{addr} (store: {shown}, {} application(s))\n",
            applications.len()
        ));
    })
    .await;
    if let Ok(server) = Arc::try_unwrap(server) {
        server.store.close().await;
    }
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(Exit::Ok)
        }
        Err(e) => Err(CliError::Failure(format!(
            "cannot serve on {}: {e}",
            args.listen
        ))),
    }
}
