//! `/status`: one JSON document for people and scripts: version, uptime,
//! the addresses served, the limits and access lists in force (the live
//! view, so a reload shows at once), sessions open, every counter, and the
//! clock state SNTP serves.

use std::time::SystemTime;

use hora_proto::outcome::{DropReason, Service};
use hora_proto::sntp::reference_id_text;
use serde_json::{json, Map, Value};

use super::Observed;
use crate::stats::Snapshot;

/// The document for `observed` now.
pub fn document(observed: &Observed) -> Value {
    let now = observed.snapshot();
    let uptime = SystemTime::now()
        .duration_since(observed.started)
        .map_or(0.0, |up| up.as_secs_f64());
    let started = chrono::DateTime::<chrono::Utc>::from(observed.started)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Every address each listener is bound to, in the order configured.
    let mut addresses = Map::new();
    for (name, addr) in &observed.addresses {
        let list = addresses
            .entry((*name).to_owned())
            .or_insert_with(|| json!([]));
        if let Value::Array(list) = list {
            list.push(json!(addr));
        }
    }
    let counters: Map<String, Value> = now
        .fields()
        .into_iter()
        .map(|(name, value)| (name, json!(value)))
        .collect();
    let live = std::sync::Arc::clone(&observed.live.borrow());
    let config = &live.config;
    let limit = &config.ratelimit;
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started": started,
        "uptime_s": (uptime * 1000.0).round() / 1000.0,
        "addresses": addresses,
        "limits": {
            "idle_timeout_s": config.idle_timeout.as_secs_f64(),
            "max_sessions": config.max_sessions,
            "max_sessions_per_ip": config.max_sessions_per_ip,
            "rate_per_source": limit.enabled.then_some(limit.rate),
            "burst_per_source": limit.burst,
            "ratelimit_table_size": limit.table_size,
            "sntp_client_log": config.sntp.client_log,
            "sntp_client_log_bytes": config.sntp.client_log * hora_proto::interleave::ENTRY_BYTES,
        },
        "access": {
            "allow": config.access.allow.len(),
            "deny": config.access.deny.len(),
        },
        "log_level": config.log.level,
        "workers": {
            "count": live.workers,
            "configured": config.workers,
            "received": now.workers_received(),
        },
        "sessions_open": now.sessions_open,
        "v2_sessions_open": observed.v2_sessions.len(),
        "datagrams": datagrams(&now),
        "counters": counters,
        "sntp_clock": clock(observed),
        "nts": nts(&live),
        "roughtime": roughtime(observed, config),
    })
}

/// Roughtime, when served: the public key clients need, and how it signs.
fn roughtime(observed: &Observed, config: &crate::config::Config) -> Value {
    let Some((base64, hex)) = &observed.roughtime_key else {
        return Value::Null;
    };
    let versions: Vec<String> = hora_proto::roughtime::version::Version::supported()
        .map(|version| version.name())
        .collect();
    json!({
        "public_key": base64,
        "public_key_hex": hex,
        "delegation_s": config.roughtime.delegation.as_secs(),
        "min_radius_s": config.roughtime.min_radius.as_secs(),
        "versions": versions,
    })
}

/// Each protocol's datagrams: received, answered, and dropped by reason.
fn datagrams(now: &Snapshot) -> Map<String, Value> {
    Service::ALL
        .iter()
        .map(|&service| {
            let dropped: Map<String, Value> = DropReason::ALL
                .iter()
                .map(|&r| (r.name().to_owned(), json!(now.dropped(service, r))))
                .collect();
            (
                service.name().to_owned(),
                json!({
                    "received": now.received(service),
                    "answered": now.answered(service),
                    "dropped": dropped,
                }),
            )
        })
        .collect()
}

/// The clock as SNTP replies and v2's time answers serve it: what the
/// kernel says, and how it is served (with `local_stratum` an
/// unsynchronized clock is served as a local one).
fn clock(observed: &Observed) -> Option<Value> {
    let kernel = observed.kernel_synchronized().unwrap_or(false);
    observed.clock().map(|clock| {
        let served_as = hora_proto::v2::ClockStatus::of(&clock, kernel).name();
        let leap = hora_proto::sntp::leap_name(clock.leap_indicator);
        json!({
            "synchronized": kernel,
            "served_as": served_as,
            "leap": leap,
            "leap_indicator": clock.leap_indicator,
            "stratum": clock.stratum,
            "reference_id": reference_id_text(clock.reference_id, clock.stratum),
            "root_delay_s": clock.root_delay.as_secs_f64(),
            "root_dispersion_s": clock.root_dispersion.as_secs_f64(),
        })
    })
}

/// NTS's settings in force, when it is on: what an operator asks first
/// (is the key exchange up, are plain requests refused, where are clients
/// sent, where are the keys).
fn nts(live: &crate::live::Live) -> Value {
    let config = &live.config.nts;
    match &live.nts {
        None => Value::Null,
        Some(nts) => json!({
            "key_exchange": (!config.bind.is_empty())
                .then(|| config.bind.iter().map(|addr| addr.to_string()).collect::<Vec<_>>()),
            "require": nts.require,
            "ntp_server": nts.ntp_server,
            "ntp_port": nts.ntp_port,
            "keys": config.keys.as_ref().map(|path| path.display().to_string()),
            "key_rotation_s": config.key_rotation.as_secs(),
            "certificate_expires": nts.certificate_expires.map(|expires| {
                chrono::DateTime::from_timestamp(expires, 0)
                    .map_or_else(|| expires.to_string(), |at| at.to_rfc3339())
            }),
        }),
    }
}
