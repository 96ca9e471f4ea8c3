//! The Prometheus text exposition behind every `/metrics`, written by the `prometheus` crate.
//!
//! Counters stay where they are counted (plain integers owned by the relay's node task, atomics
//! in the transports): nothing on the packet path touches a registry or takes a lock. A scrape
//! copies the current values into a fresh [`Exposition`] and the crate's text encoder writes
//! them: `# HELP`, `# TYPE`, label quoting and escaping, families sorted by name.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// One scrape's worth of metrics, rendered with [`Exposition::render`].
#[derive(Debug, Default)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter `name` with value `value`.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        if let Some(counter) = self.register(IntCounter::with_opts(Opts::new(name, help))) {
            counter.inc_by(value);
        }
    }

    /// A gauge `name` with value `value`.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        if let Some(gauge) = self.register(Gauge::with_opts(Opts::new(name, help))) {
            gauge.set(value);
        }
    }

    /// A counter `name` with one series per `(label value, count)`, labelled `label`.
    pub fn counters<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        if let Some(counters) = self.register(IntCounterVec::new(Opts::new(name, help), &[label])) {
            for (label_value, value) in values {
                counters.with_label_values(&[label_value]).inc_by(value);
            }
        }
    }

    /// A gauge `name` with one series per `(label value, value)`, labelled `label`.
    pub fn gauges<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, f64)>,
    ) {
        if let Some(gauges) = self.register(GaugeVec::new(Opts::new(name, help), &[label])) {
            for (label_value, value) in values {
                gauges.with_label_values(&[label_value]).set(value);
            }
        }
    }

    /// Appends the metrics to `out` in the Prometheus text format.
    pub fn render(self, out: &mut String) {
        let mut text = Vec::new();
        let encoded = TextEncoder::new().encode(&self.registry.gather(), &mut text);
        debug_assert!(encoded.is_ok(), "encoding to memory: {encoded:?}");
        // The encoder writes UTF-8 (names are ASCII, help texts and labels are &str).
        out.push_str(&String::from_utf8_lossy(&text));
    }

    /// Registers a metric; a name that is invalid or already used is a bug of the caller (names
    /// are constants), caught by its tests, and leaves the metric out rather than fail a scrape.
    fn register<C>(&mut self, metric: prometheus::Result<C>) -> Option<C>
    where
        C: Collector + Clone + 'static,
    {
        let registered = metric.and_then(|m| {
            self.registry.register(Box::new(m.clone()))?;
            Ok(m)
        });
        debug_assert!(registered.is_ok(), "metric refused: {:?}", registered.err());
        registered.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_help_type_and_quoted_labels() {
        let mut e = Exposition::new();
        e.counter("videocall_b_total", "Bees.", 7);
        e.gauge("videocall_a", "Ays.", 0.25);
        e.counters(
            "videocall_c_total",
            "Cees.",
            "reason",
            [("x", 1), ("y\"z", 0)],
        );
        let mut out = String::from("# before\n");
        e.render(&mut out);
        assert!(out.starts_with("# before\n"));
        assert!(
            out.contains("# HELP videocall_a Ays.\n# TYPE videocall_a gauge\nvideocall_a 0.25\n")
        );
        assert!(out.contains(
            "# HELP videocall_b_total Bees.\n# TYPE videocall_b_total counter\nvideocall_b_total 7\n"
        ));
        assert!(out.contains("videocall_c_total{reason=\"x\"} 1\n"));
        assert!(out.contains("videocall_c_total{reason=\"y\\\"z\"} 0\n"));
    }

    #[test]
    fn large_counters_render_as_integers() {
        let mut e = Exposition::new();
        e.counter("videocall_big_total", "Big.", 1 << 40);
        let mut out = String::new();
        e.render(&mut out);
        assert!(out.contains("videocall_big_total 1099511627776\n"), "{out}");
    }
}
