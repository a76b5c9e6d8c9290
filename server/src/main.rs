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
    // A build with hashed file names leaves their hashes beside the binary (`hash.txt`): then
    // the pages name those files, and the files may be kept for a year.
    leptos_options.hash_files |= std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(&*leptos_options.hash_file)))
        .is_some_and(|path| path.is_file());

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
