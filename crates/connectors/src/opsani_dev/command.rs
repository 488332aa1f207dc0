//! `servo inject-sidecar` and `servo eject-sidecar` (ServoX's commands of the same names),
//! contributed to the CLI through `servo_core::command` as `demo-app` is: they add or remove the
//! Envoy sidecar opsani_dev measures through, with the same code as its check's remedy
//! (`kubernetes/sidecar.rs`).

use crate::kubernetes::client::Client;
use crate::kubernetes::sidecar::{self, DEFAULT_IMAGE, Plan, PortRef};
use servo_core::ConnectorError;
use std::ffi::OsString;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Usage errors, as the rest of the CLI exits on them.
const USAGE: u8 = 2;

/// Inject an Envoy sidecar to capture metrics: adds the `opsani-envoy` container to a Deployment
/// and points the Service's port at it (port 9980), remembering where it pointed for
/// `eject-sidecar`. Nothing changes when it is already injected.
///
/// The cluster is the one `kubectl` uses (KUBECONFIG, ~/.kube/config, or the in-cluster
/// service account).
///
/// Example: servo inject-sidecar -n shop --service web deployment/web --dry-run
#[derive(clap::Parser)]
#[command(name = "servo inject-sidecar")]
struct Inject {
    /// The Deployment to inject the sidecar into (`deployment/NAME`; `deploy/NAME` too).
    target: String,
    /// The sidecar's image.
    #[arg(short, long, default_value = DEFAULT_IMAGE)]
    image: String,
    /// The namespace of the target and the Service.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The Service whose port the sidecar takes over.
    #[arg(short, long)]
    service: Option<String>,
    /// The Service port (name or number) to proxy; without --service, the container port.
    #[arg(short, long)]
    port: Option<String>,
    /// Print the patches instead of sending them.
    #[arg(long)]
    dry_run: bool,
}

/// Eject the Envoy sidecar: removes the `opsani-envoy` container from a Deployment and points the
/// Service's port back where it pointed before `inject-sidecar`.
///
/// Example: servo eject-sidecar -n shop deployment/web
#[derive(clap::Parser)]
#[command(name = "servo eject-sidecar")]
struct Eject {
    /// The Deployment to eject the sidecar from (`deployment/NAME`).
    target: String,
    /// The namespace of the target.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Print the patches instead of sending them.
    #[arg(long)]
    dry_run: bool,
}

/// The Deployment a `KIND/NAME` target names.
fn deployment_name(target: &str) -> Result<&str, String> {
    match target.split_once('/') {
        Some(("deployment" | "deploy", name)) if !name.is_empty() => Ok(name),
        Some(("pod", _)) => Err(
            "a Pod's containers cannot be changed once it exists (nor does ServoX inject into Pods): name its Deployment".into(),
        ),
        Some(("rollout", _)) => Err("Argo Rollouts are not supported (nor by ServoX 25.3.0)".into()),
        _ => Err(format!(
            "target `{target}` must be prefixed with its kind: deployment/NAME"
        )),
    }
}

fn parse<T: clap::Parser>(name: &str, args: Vec<OsString>) -> T {
    let argv = std::iter::once(OsString::from(name)).chain(args);
    T::try_parse_from(argv).unwrap_or_else(|e| e.exit())
}

fn usage(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(USAGE)
}

/// Prints the error with its hint; a request that cannot be met as asked is a usage error.
fn failure(e: ConnectorError) -> ExitCode {
    eprintln!("error: {e}");
    if let Some(hint) = e.hint() {
        eprintln!("  = help: {hint}");
    }
    match e {
        ConnectorError::Invalid { .. } => ExitCode::from(USAGE),
        _ => ExitCode::FAILURE,
    }
}

/// Runs `work` on a runtime of its own, stopped by Ctrl-C.
fn block_on<F: Future<Output = ExitCode>>(work: impl FnOnce(CancellationToken) -> F) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_interrupt = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_interrupt.cancel();
            }
        });
        work(cancel).await
    })
}

/// Prints a plan's patches as they would be sent.
fn print_plan(plan: &Plan, namespace: &str, deployment: &str) {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    if let Some(patch) = &plan.deployment {
        println!(
            "PATCH deployment/{deployment} -n {namespace} (application/strategic-merge-patch+json)\n{}",
            pretty(patch)
        );
    }
    if let Some((service, patch)) = &plan.service {
        println!(
            "PATCH service/{service} -n {namespace} (application/strategic-merge-patch+json)\n{}",
            pretty(patch)
        );
    }
}

fn inject(args: Vec<OsString>) -> ExitCode {
    let args: Inject = parse("servo inject-sidecar", args);
    let name = match deployment_name(&args.target) {
        Ok(name) => name.to_string(),
        Err(message) => return usage(message),
    };
    if args.service.is_none() && args.port.is_none() {
        return usage("give --service or --port: which traffic the sidecar proxies".into());
    }
    block_on(async move |cancel| {
        let run = async {
            let api = Client::connect(None, None).await?;
            let ns = &args.namespace;
            let deployment = api.deployment(ns, &name, &cancel).await?;
            let service = match &args.service {
                Some(s) => Some(sidecar::service(&api, ns, s, &cancel).await?),
                None => None,
            };
            let port = args.port.as_deref().map(PortRef::parse);
            let plan =
                sidecar::plan_inject(&deployment, service.as_ref(), port.as_ref(), &args.image)?;
            if args.dry_run {
                print_plan(&plan, ns, &name);
            } else if plan.is_empty() {
                println!("Envoy sidecar already injected to Deployment {name} in {ns}");
            } else {
                sidecar::apply(&api, ns, &name, &plan, &cancel).await?;
                println!("Envoy sidecar injected to Deployment {name} in {ns}");
            }
            Ok::<_, ConnectorError>(())
        };
        match run.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failure(e),
        }
    })
}

fn eject(args: Vec<OsString>) -> ExitCode {
    let args: Eject = parse("servo eject-sidecar", args);
    let name = match deployment_name(&args.target) {
        Ok(name) => name.to_string(),
        Err(message) => return usage(message),
    };
    block_on(async move |cancel| {
        let run = async {
            let api = Client::connect(None, None).await?;
            let ns = &args.namespace;
            let deployment = api.deployment(ns, &name, &cancel).await?;
            let plan = sidecar::plan_eject(&deployment);
            if plan.is_empty() {
                // ServoX's answer, and its exit code.
                eprintln!("No Envoy sidecar found in Deployment {name} in {ns}");
                return Ok(false);
            }
            if args.dry_run {
                print_plan(&plan, ns, &name);
            } else {
                sidecar::apply(&api, ns, &name, &plan, &cancel).await?;
                println!("Envoy sidecar ejected from Deployment {name} in {ns}");
            }
            Ok::<_, ConnectorError>(true)
        };
        match run.await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => failure(e),
        }
    })
}

servo_core::inventory::submit!(servo_core::command::ExternalCommand {
    name: "inject-sidecar",
    about: "Inject the Envoy sidecar opsani_dev measures through (servo inject-sidecar --help)",
    run: inject,
});

servo_core::inventory::submit!(servo_core::command::ExternalCommand {
    name: "eject-sidecar",
    about: "Eject the Envoy sidecar and restore the Service (servo eject-sidecar --help)",
    run: eject,
});
