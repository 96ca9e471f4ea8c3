//! How a videocall service is told to stop, and the backstop that ends it.

/// Ends the process with status 1 if a graceful stop is still running `limit` plus a second
/// from now: a stop signal must end a node whatever it is doing (the stop itself is bounded by
/// `limit`; this is the backstop).
pub fn exit_after(limit: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit + std::time::Duration::from_secs(1));
        eprintln!("stop did not finish within the drain limit of {limit:?}; exiting now");
        std::process::exit(1);
    });
}

/// Resolves on Ctrl-C or SIGTERM: how every videocall service is told to stop.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on Unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
