use std::process::ExitCode;

use mailvet::{Application, Cli, Command, check, startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    mailvet::tls::install_provider();
    let cli = Cli::parse_args();
    telemetry::init_tracing(cli.settings.log_format);
    let outcome = match cli.command.clone().unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli).await,
        Command::Migrate => migrate(&cli).await,
        Command::Check {
            emails,
            file: None,
            json,
            fresh,
            ..
        } => check::run(&cli.settings, &emails, json, fresh).await,
        Command::Check {
            file: Some(file),
            output,
            json,
            fresh,
            ..
        } => check::run_file(&cli.settings, &file, output.as_deref(), json, fresh).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "mailvet failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: &Cli) -> anyhow::Result<()> {
    let app = Application::build(&cli.settings).await?;
    tracing::info!(listen = %app.local_addr(), "mailvet is serving");
    app.run_until_stopped(startup::shutdown_signal()).await
}

async fn migrate(cli: &Cli) -> anyhow::Result<()> {
    let db = startup::open_database(&cli.settings).await?;
    db.close().await;
    tracing::info!("migrations are up to date");
    Ok(())
}
