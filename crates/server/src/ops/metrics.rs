//! `/metrics`: a snapshot of the counters in the Prometheus text format
//! (the classic 0.0.4 one by default, which Debian 12's promtool reads, or
//! OpenMetrics when the scraper asks for it), encoded by the official
//! `prometheus-client` crate. The counters are read at scrape time; the
//! serving loops never wait for a scrape.

use std::time::UNIX_EPOCH;

use hora_proto::outcome::{DropReason, Service};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Observed;
use crate::sessions::{DURATION_BUCKETS, LATENESS_BUCKETS};

/// A histogram's exemplars carry no labels here.
type NoLabels = Vec<(String, String)>;
use crate::stats::{Event, Snapshot};

/// The content type of each format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// OpenMetrics' content type.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition of `observed` now, in OpenMetrics if `openmetrics`.
pub fn render(observed: &Observed, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        observed: observed.clone(),
    }));
    let mut text = String::new();
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    }
    Ok(text)
}

/// One scrape: reads a snapshot and encodes it.
#[derive(Debug)]
struct Scrape {
    observed: Observed,
}

/// prometheus-client appends `_total` to counters itself.
fn family(metric: &str) -> &str {
    metric.strip_suffix("_total").unwrap_or(metric)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, &str)>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(family(name), help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        let labels: Vec<(&str, &str)> = labels.clone();
        ConstCounter::new(*value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &[(&str, &str)],
    value: f64,
) -> Result<(), std::fmt::Error> {
    gauges(encoder, name, help, &[(labels.to_vec(), value)])
}

/// One gauge family, a value for each set of labels (a state set: 1 for
/// the state it is in, 0 for the others).
fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, &str)>, f64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// The clock's state for alerts: whether the kernel says it is
/// synchronized, what replies serve it as, and a leap second pending.
fn encode_clock_state(
    encoder: &mut DescriptorEncoder,
    clock: &hora_proto::sntp::ServerClock,
    kernel_synchronized: bool,
) -> Result<(), std::fmt::Error> {
    use hora_proto::v2::ClockStatus;
    gauge(
        encoder,
        "hora_clock_synchronized",
        "Whether the kernel says the host clock is synchronized (1) or not (0).",
        &[],
        f64::from(u8::from(kernel_synchronized)),
    )?;
    let served = ClockStatus::of(clock, kernel_synchronized);
    let states: Vec<_> = [
        ClockStatus::Synchronized,
        ClockStatus::Local,
        ClockStatus::Unsynchronized,
    ]
    .into_iter()
    .map(|state| {
        let value = f64::from(u8::from(state == served));
        (vec![("state", state.name())], value)
    })
    .collect();
    gauges(
        encoder,
        "hora_clock_served_as",
        "What SNTP, NTS and v2 answers serve the clock as (1 for the state it is in): synchronized, local (local_stratum: unsynchronized, served anyway) or unsynchronized (clients discard it).",
        &states,
    )?;
    gauge(
        encoder,
        "hora_clock_leap_pending",
        "A leap second announced for the end of the day: 1 inserted, -1 deleted, 0 none.",
        &[],
        match clock.leap_indicator {
            1 => 1.0,
            2 => -1.0,
            _ => 0.0,
        },
    )
}

/// The counters of a snapshot: datagrams by protocol and outcome, then
/// every event, one family per metric name, in the list's order.
fn encode_counters(encoder: &mut DescriptorEncoder, now: &Snapshot) -> Result<(), std::fmt::Error> {
    let services = || {
        Service::ALL
            .iter()
            .map(|&s| (vec![("protocol", s.name())], s))
    };
    let received: Vec<_> = services().map(|(l, s)| (l, now.received(s))).collect();
    counter(
        encoder,
        "hora_datagrams_received_total",
        "Datagrams received, by protocol: answered plus dropped.",
        &received,
    )?;
    let answered: Vec<_> = services().map(|(l, s)| (l, now.answered(s))).collect();
    counter(
        encoder,
        "hora_requests_total",
        "Datagrams answered, by protocol.",
        &answered,
    )?;
    let mut dropped = Vec::new();
    for service in Service::ALL {
        for reason in DropReason::ALL {
            dropped.push((
                vec![("protocol", service.name()), ("reason", reason.name())],
                now.dropped(service, reason),
            ));
        }
    }
    // The reasons named from the list the counters use: the help can't
    // miss one (it missed `unauthenticated` when written by hand).
    let reasons: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
    let help = format!(
        "Datagrams not answered, by protocol and reason ({}).",
        reasons.join(", ")
    );
    counter(encoder, "hora_dropped_total", &help, &dropped)?;
    let workers: Vec<String> = (0..now.workers_received().len())
        .map(|w| w.to_string())
        .collect();
    let by_worker: Vec<_> = workers
        .iter()
        .zip(now.workers_received())
        .map(|(worker, &received)| (vec![("worker", worker.as_str())], received))
        .collect();
    counter(
        encoder,
        "hora_worker_received_total",
        "Datagrams received by each worker, every protocol's: each source address meets one worker.",
        &by_worker,
    )?;
    encode_events(encoder, now)
}

/// The events' counters, one family per metric name, in the list's order.
fn encode_events(encoder: &mut DescriptorEncoder, now: &Snapshot) -> Result<(), std::fmt::Error> {
    let mut done: Vec<&str> = Vec::new();
    for &event in Event::ALL {
        let (name, _, help) = event.metric();
        if done.contains(&name) {
            continue;
        }
        done.push(name);
        let rows: Vec<_> = Event::ALL
            .iter()
            .filter(|e| e.metric().0 == name)
            .map(|&e| {
                (
                    e.metric().1.map(|l| vec![l]).unwrap_or_default(),
                    now.event(e),
                )
            })
            .collect();
        counter(encoder, name, help, &rows)?;
    }
    Ok(())
}

/// A histogram from per-bucket counts (the last past every bound).
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) -> Result<(), std::fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = bounds.iter().copied().zip(counts.iter().copied()).collect();
    buckets.push((
        f64::INFINITY,
        counts.get(bounds.len()).copied().unwrap_or(0),
    ));
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    metric.encode_histogram::<NoLabels>(sum, counts.iter().sum(), &buckets, None)
}

impl Scrape {
    /// The seed sessions' histograms: how long they lasted, how late the
    /// idle ones were ended.
    fn encode_histograms(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let durations = self.observed.sessions.durations();
        histogram(
            encoder,
            "hora_session_duration_seconds",
            "How long sessions of the seed's protocol lasted, from login to their end.",
            &DURATION_BUCKETS,
            &durations.counts,
            durations.sum,
        )?;
        let (late, late_sum) = self.observed.sessions.lateness();
        histogram(
            encoder,
            "hora_idle_notice_lateness_seconds",
            "How long after its idle deadline each idle session was ended and told so: the daemon's own delay.",
            &LATENESS_BUCKETS,
            &late,
            late_sum,
        )
    }

    /// The settings in force (the live view), so a reload shows at once.
    fn encode_config(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = std::sync::Arc::clone(&self.observed.live.borrow());
        let config = &live.config;
        let limit = &config.ratelimit;
        let rows: [(&str, &str, f64); 5] = [
            (
                "hora_config_idle_timeout_seconds",
                "The idle timeout in force.",
                config.idle_timeout.as_secs_f64(),
            ),
            (
                "hora_config_max_sessions",
                "The most sessions open at once, in force.",
                config.max_sessions as f64,
            ),
            (
                "hora_config_max_sessions_per_ip",
                "The most sessions open at once from one IP, in force.",
                config.max_sessions_per_ip as f64,
            ),
            (
                "hora_config_rate_per_source",
                "Answers a second per source in force (0: rate limiting off).",
                if limit.enabled { limit.rate } else { 0.0 },
            ),
            (
                "hora_config_burst_per_source",
                "The burst per source in force.",
                limit.burst,
            ),
        ];
        for (name, help, value) in rows {
            gauge(encoder, name, help, &[], value)?;
        }
        let mut metric = encoder.encode_descriptor(
            "hora_config_access_networks",
            "Networks in the access lists in force, by list.",
            None,
            MetricType::Gauge,
        )?;
        for (list, networks) in [
            ("allow", &config.access.allow),
            ("deny", &config.access.deny),
        ] {
            ConstGauge::new(networks.len() as f64)
                .encode(metric.encode_family(&[("list", list)])?)?;
        }
        if let Some(expires) = live.nts.as_ref().and_then(|nts| nts.certificate_expires) {
            gauge(
                encoder,
                "hora_nts_certificate_expiry_timestamp_seconds",
                "When the key exchange's certificate in force expires (Unix seconds): alert well before.",
                &[],
                expires as f64,
            )?;
        }
        Ok(())
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now: Snapshot = self.observed.snapshot();
        gauge(
            &mut encoder,
            "hora_sessions_open",
            "Sessions of the seed's protocol open now.",
            &[],
            now.sessions_open as f64,
        )?;
        gauge(
            &mut encoder,
            "hora_v2_sessions_open",
            "Protocol v2 sessions open now (counted apart from the seed's, under the same limits).",
            &[],
            self.observed.v2_sessions.len() as f64,
        )?;
        gauge(
            &mut encoder,
            "hora_build_info",
            "The running build (always 1).",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        )?;
        let started = self
            .observed
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        gauge(
            &mut encoder,
            "hora_start_time_seconds",
            "When horad started, seconds since the Unix epoch.",
            &[],
            started,
        )?;
        encode_counters(&mut encoder, &now)?;
        self.encode_histograms(&mut encoder)?;
        self.encode_config(&mut encoder)?;
        if let Some(clock) = self.observed.clock() {
            let kernel = self.observed.kernel_synchronized().unwrap_or(false);
            encode_clock_state(&mut encoder, &clock, kernel)?;
            gauge(
                &mut encoder,
                "hora_sntp_leap_indicator",
                "The leap indicator SNTP replies carry (3: unsynchronized).",
                &[],
                f64::from(clock.leap_indicator),
            )?;
            gauge(
                &mut encoder,
                "hora_sntp_stratum",
                "The stratum SNTP replies carry (0: unsynchronized).",
                &[],
                f64::from(clock.stratum),
            )?;
            gauge(
                &mut encoder,
                "hora_sntp_root_dispersion_seconds",
                "The root dispersion SNTP replies carry.",
                &[],
                clock.root_dispersion.as_secs_f64(),
            )?;
        }
        Ok(())
    }
}
