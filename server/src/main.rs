//! Entry point: parse the configuration, start logging, build the process, serve until stopped.

use clap::Parser;
use server::config::Config;
use server::startup::Application;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    server::telemetry::init(config.log_format);

    let mut leptos_options = match leptos::config::get_configuration(None) {
        Ok(conf) => conf.leptos_options,
        Err(err) => {
            tracing::error!(error = %err, "invalid LEPTOS_* settings");
            return ExitCode::FAILURE;
        }
    };
    leptos_options.site_addr = config.site_addr;

    let (trigger, shutdown) = server::shutdown::channel();
    trigger.on_os_signal();

    let app = match Application::build(config, leptos_options, shutdown).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!(error = %server::error::chain(&err), "cannot start");
            return ExitCode::FAILURE;
        }
    };
    match app.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %server::error::chain(&err), "server failed");
            ExitCode::FAILURE
        }
    }
}
