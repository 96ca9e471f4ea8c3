//! Logging of every videocall service.

/// Logs of every videocall service: to stderr, filtered by `filter` (tracing `EnvFilter`
/// syntax), colours only on a terminal.
pub fn init_logging(filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
