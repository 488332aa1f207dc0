//! `servo optimizer admin-token`: an operator token for the server's web UI.

use super::StoreArg;
use crate::cli::{CliError, CommandResult, Exit, Globals};
use crate::server::application::new_token;
use crate::server::operator::add_operator;

/// Create an operator token for the web UI of `servo optimizer serve` and print it, once.
///
/// The store keeps only its SHA-256 digest. Operator tokens open every application's page and
/// its actions (pause, resume, budget, retire); application tokens never do. `--rotate` revokes
/// every earlier operator token. Issuing a token is recorded in the audit log.
///
/// Example: servo optimizer admin-token --store .servo/optimizer.db
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    store: StoreArg,
    /// Revoke every earlier operator token.
    #[arg(long)]
    rotate: bool,
}

pub async fn run(args: Args, _globals: &Globals) -> CommandResult {
    let store = args.store.open().await?;
    let token = new_token("servo_op_")
        .map_err(|e| CliError::Failure(format!("cannot read random bytes: {e}")))?;
    add_operator(&store, &token, args.rotate)
        .await
        .map_err(|e| CliError::Failure(e.to_string()))?;
    store.close().await;
    crate::output::print(&format!("{token}\n"))?;
    eprintln!(
        "operator token created{}: it is shown only this once; open the server's / and log in with it",
        if args.rotate {
            " (earlier ones revoked)"
        } else {
            ""
        }
    );
    Ok(Exit::Ok)
}
