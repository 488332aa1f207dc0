//! `servo optimizer`: the embedded optimizer as a server for a fleet of servos (`serve`) and the
//! applications it optimizes (`app`).

mod admin_token;
mod app;
mod serve;

use super::{CliError, CommandResult, Globals};
use crate::server::store::Store;
use crate::study::journal::sqlite_path;
use servo_core::connector::Registry;

/// Serve the optimizer to many servos over the Opsani/ServoX protocol, and manage its applications.
///
/// Start with:
///
///   servo optimizer app create example.com/web --minimize cost --constraint 'latency_p99 < 200ms'
///   servo optimizer serve --listen 0.0.0.0:8080
///
/// then point each servo at it:
///
///   optimizer: {id: example.com/web, token: <the token>, base_url: http://HOST:8080}
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Serve(serve::Args),
    App(app::Args),
    AdminToken(admin_token::Args),
}

/// Where studies live, shared by every `servo optimizer` command.
#[derive(Debug, Clone, clap::Args)]
struct StoreArg {
    /// The store: a SQLite file, or `postgres://USER@HOST/DB` so several servers share studies.
    /// Prefer the environment variable for a URL with a password.
    #[arg(
        long,
        env = "SERVO_OPTIMIZER_STORE",
        default_value = ".servo/optimizer.db",
        value_name = "PATH|URL"
    )]
    store: String,
}

impl StoreArg {
    async fn open(&self) -> Result<Store, CliError> {
        Store::open(&self.store)
            .await
            .map_err(|e| CliError::Failure(e.to_string()))
    }

    /// The store, only to read it: a SQLite file that does not exist is an error, not a new
    /// empty store (a mistyped `--store` would otherwise list nothing and leave a file behind).
    /// `None` while its server is still creating its tables.
    async fn open_to_read(&self) -> Result<Option<Store>, CliError> {
        if let Some(path) = sqlite_path(&self.store)
            && !path.exists()
        {
            return Err(CliError::usage_with_hint(
                format!("no optimizer store at {}", path.display()),
                "`servo optimizer app create ORG/APP` creates it; or point --store (or SERVO_OPTIMIZER_STORE) at the server's store",
            ));
        }
        Store::open_to_read(&self.store)
            .await
            .map_err(|e| CliError::Failure(e.to_string()))
    }
}

pub async fn run(args: Args, globals: &Globals, _registry: &Registry) -> CommandResult {
    match args.command {
        Command::Serve(args) => serve::run(args, globals).await,
        Command::App(args) => app::run(args, globals).await,
        Command::AdminToken(args) => admin_token::run(args, globals).await,
    }
}
