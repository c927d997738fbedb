use std::process::ExitCode;

use mailvet::settings::{CheckArgs, DoctorArgs, MigrateSettings};
use mailvet::{Application, Cli, Command, Settings, check, doctor, startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    mailvet::tls::install_provider();
    let command = Cli::parse_args().into_command();
    telemetry::init_tracing(command.log_format());
    let outcome = match command {
        Command::Serve(settings) => serve(&settings).await,
        Command::Migrate(settings) => migrate(&settings).await,
        Command::Check(CheckArgs {
            emails,
            file: None,
            json,
            fresh,
            fail_on,
            settings,
            ..
        }) => check::run(&settings, &emails, json, fresh, &fail_on).await,
        Command::Check(CheckArgs {
            file: Some(file),
            output,
            json,
            fresh,
            fail_on,
            settings,
            ..
        }) => check::run_file(&settings, &file, output.as_deref(), json, fresh, &fail_on).await,
        Command::Doctor(args) => return run_doctor(&args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<check::FailOnMatched>() => {
            eprintln!("mailvet check: {err}");
            ExitCode::from(check::FAIL_ON_EXIT_CODE)
        }
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "mailvet failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(listen = %app.local_addr(), "mailvet is serving");
    app.run_until_stopped(startup::shutdown_signal()).await
}

/// Prints doctor's report; exits 1 when a check failed.
async fn run_doctor(args: &DoctorArgs) -> ExitCode {
    let rows = doctor::run(args).await;
    if args.json {
        println!("{}", doctor::output::json(&rows));
    } else {
        print!("{}", doctor::output::table(&rows));
    }
    if doctor::any_failed(&rows) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn migrate(settings: &MigrateSettings) -> anyhow::Result<()> {
    let db = startup::open_database(&settings.database).await?;
    db.close().await;
    tracing::info!("migrations are up to date");
    Ok(())
}
