use std::process::ExitCode;

use kinit::cli::{CertsCommand, Cli, Command, ConfigCommand, EtcdCommand, SnapshotCommand};
use kinit::commands::{self, CommandResult};
use kinit::ui::GlobalOptions;

fn main() -> ExitCode {
    let cli = kinit::cli::parse();
    let global = cli.global.options();
    init_tracing(&global);
    let result = run(&cli, &global);
    // Commands report their own outcome; only errors are left to show, and only here.
    if let Err(e) = &result {
        eprintln!("error: {e}");
    }
    ExitCode::from(commands::exit_code(&result))
}

fn run(cli: &Cli, global: &GlobalOptions) -> CommandResult {
    match &cli.command {
        Command::Init(args) => {
            let opts = args.options(global).unwrap_or_else(|e| e.exit());
            commands::init::run(global, &opts)
        }
        Command::Config(ConfigCommand::Validate) => commands::config_validate::run(global),
        Command::Lab(lab) => commands::lab::run(global, lab.action()),
        Command::Render(args) => commands::render::run(global, &args.options(global)),
        Command::Preflight(args) => commands::preflight::run(global, &args.options()),
        Command::Up(args) => commands::up::run(global, &args.options()),
        Command::Exec(args) => commands::exec::run(global, &args.options()),
        Command::Status(args) => commands::status::run(global, &args.options()),
        Command::Certs(CertsCommand::Generate) => commands::certs::generate(global),
        Command::Certs(CertsCommand::CheckExpiration) => commands::certs::check_expiration(global),
        Command::Certs(CertsCommand::Renew(args)) => {
            commands::certs::renew(global, &args.options())
        }
        Command::Kubeconfig(args) => commands::kubeconfig::run(global, &args.options()),
        Command::Reset(args) => commands::reset::run(global, &args.options()),
        Command::Remove(args) => commands::remove::run(global, &args.options()),
        Command::Drill(drill) => commands::drill::run(global, &drill.options()),
        Command::Etcd(EtcdCommand::Snapshot(SnapshotCommand::Save(args))) => {
            commands::etcd_snapshot::save(global, &args.options())
        }
        Command::Etcd(EtcdCommand::Snapshot(SnapshotCommand::Status { file })) => {
            commands::etcd_snapshot::status(global, file)
        }
        Command::Etcd(EtcdCommand::Snapshot(SnapshotCommand::Restore(args))) => {
            commands::etcd_snapshot::restore(global, &args.options())
        }
        Command::Bundle(bundle) => {
            let opts = bundle.options().map_err(commands::CommandError::Usage)?;
            commands::bundle::run(global, &opts)
        }
        Command::Completion { shell } => commands::completion::run(*shell, kinit::cli::command()),
        Command::Man => commands::man::run(kinit::cli::command()),
    }
}

/// Logs go to stderr; RUST_LOG overrides the level chosen by -v/-q.
fn init_tracing(global: &GlobalOptions) {
    let level = match global.verbosity {
        i8::MIN..=-1 => "error",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("kinit={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(global.color.enabled_for_stderr())
        .without_time()
        .init();
}
