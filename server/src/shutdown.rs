//! One stop signal for the whole process: Ctrl-C or SIGTERM, or a test asking the app to stop.
//! Every loop and the HTTP server watch the same `Shutdown`.

use tokio::sync::watch;

/// A cloneable handle that resolves once the process is asked to stop.
#[derive(Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// The side that asks everything to stop.
#[derive(Clone)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

/// A new stop signal that nothing has triggered yet.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Triggers on Ctrl-C or SIGTERM.
    pub fn on_os_signal(self) {
        tokio::spawn(async move {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot listen for SIGTERM");
                        std::future::pending::<()>().await;
                    }
                }
            };
            #[cfg(not(unix))]
            let terminate = std::future::pending::<()>();
            tokio::select! {
                _ = ctrl_c => tracing::info!("Ctrl-C received, stopping"),
                _ = terminate => tracing::info!("SIGTERM received, stopping"),
            }
            self.trigger();
        });
    }
}

impl Shutdown {
    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once a stop is asked for (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means every trigger is gone, which only happens while the process exits.
        let _ = self.receiver.wait_for(|stopped| *stopped).await;
    }
}
