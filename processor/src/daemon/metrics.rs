//! The daemon's metrics (Prometheus text format) and health, served over plain HTTP.

use processor_core::core::Counters;
use processor_core::db::{DbError, Read};
use processor_core::inspect::Inspector;
use processor_core::payments::PlanState;
use std::fmt::Write as _;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::{Duration, Instant};

/// The event loop turns at least every tick and at every core event: this long without a turn
/// is a stall (a handler stuck, the runtime starved), not a slow signing round.
pub const LOOP_STALLED_AFTER: Duration = Duration::from_secs(30);
/// Sends to the broker failing this long, with nothing sent or received in between: the link
/// is down.
pub const LINK_DOWN_AFTER: Duration = Duration::from_secs(60);

/// What the state in the DB says, sampled by the daemon.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct StateGauges {
    /// The next height to scan (0 before keys exist).
    pub next_to_scan: u64,
    pub tip: u64,
    pub final_height: u64,
    pub halted: bool,
    pub batches_pending: u64,
    pub batches_signed: u64,
    pub plans_planned: u64,
    pub plans_signed: u64,
    pub plans_completed: u64,
    pub plans_failed: u64,
    /// Signing attempts beyond the first, over unfinished Batches and plans.
    pub reattempts_pending: u64,
    pub outbox: u64,
}

impl StateGauges {
    pub fn read(db: &impl Read, tip: u64, confirmations: u64) -> Result<StateGauges, DbError> {
        let inspector = Inspector::new(db);
        let mut gauges = StateGauges {
            next_to_scan: inspector.next_height()?.map_or(0, |h| h.0),
            tip,
            // As the core counts it: `confirmations` blocks on top of a final block.
            final_height: tip.saturating_sub(confirmations),
            halted: inspector.halted()?.is_some(),
            outbox: inspector.outbox_len()? as u64,
            ..StateGauges::default()
        };
        for (_, record) in inspector.batches()? {
            if record.signature.is_some() {
                gauges.batches_signed += 1;
            } else {
                gauges.batches_pending += 1;
                gauges.reattempts_pending += u64::from(record.attempt.0);
            }
        }
        for (_, plan) in inspector.plans()? {
            match plan.state {
                PlanState::Planned => {
                    gauges.plans_planned += 1;
                    gauges.reattempts_pending += u64::from(plan.attempt.0);
                }
                PlanState::Signed { .. } => gauges.plans_signed += 1,
                PlanState::Completed { .. } => gauges.plans_completed += 1,
                PlanState::Failed { .. } => gauges.plans_failed += 1,
            }
        }
        Ok(gauges)
    }
}

/// Failures at the daemon's edges, by kind.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct EdgeCounters {
    pub node_errors: u64,
    pub node_timeouts: u64,
    pub node_malformed: u64,
    pub link_errors: u64,
    pub published: u64,
    pub publish_refused: u64,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Snapshot>,
}

#[derive(Clone, Default, Debug)]
pub struct Snapshot {
    pub chain: String,
    pub core: Counters,
    pub state: StateGauges,
    pub edges: EdgeCounters,
    /// Why the daemon is unhealthy, if it is.
    pub unhealthy: Option<String>,
    /// Milliseconds since start at the last loop iteration.
    pub last_loop_ms: u64,
    /// When the event loop last made progress (a turn, or a core event handled).
    pub progress_at: Option<Instant>,
    /// Since when sends to the broker have failed, if the last exchange with it failed.
    pub link_failing_since: Option<Instant>,
}

impl Snapshot {
    /// Why the daemon is unhealthy at `now`, if it is: what the loop last found (a halt, the
    /// node failing), a stalled loop, or a broker link down.
    pub fn health(&self, now: Instant) -> Result<(), String> {
        if let Some(reason) = &self.unhealthy {
            return Err(reason.clone());
        }
        if let Some(at) = self.progress_at {
            let idle = now.saturating_duration_since(at);
            if idle > LOOP_STALLED_AFTER {
                return Err(format!("the event loop has made no progress for {} s", idle.as_secs()));
            }
        }
        if let Some(since) = self.link_failing_since {
            let down = now.saturating_duration_since(since);
            if down > LINK_DOWN_AFTER {
                return Err(format!("the broker link has been failing for {} s", down.as_secs()));
            }
        }
        Ok(())
    }
}

impl Metrics {
    pub fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut inner);
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn render(&self) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        let chain = &s.chain;
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP processor_{name} {help}\n# TYPE processor_{name} {kind}");
            let _ = writeln!(out, "processor_{name}{{chain=\"{chain}\"}} {value}");
        };
        metric("chain_tip_height", "gauge", "Best height the node reported.", s.state.tip);
        metric("final_height", "gauge", "Highest final height (tip minus confirmations).", s.state.final_height);
        metric("scanned_height", "gauge", "Next height to scan.", s.state.next_to_scan);
        metric(
            "halted",
            "gauge",
            "1 once a final block changed: scanning stopped for good.",
            u64::from(s.state.halted),
        );
        metric("batches_pending", "gauge", "Batches built and not yet signed.", s.state.batches_pending);
        metric("batches_signed", "gauge", "Batches signed.", s.state.batches_signed);
        metric("plans_planned", "gauge", "Plans being signed.", s.state.plans_planned);
        metric("plans_signed", "gauge", "Plans signed, not yet final.", s.state.plans_signed);
        metric("plans_completed", "gauge", "Plans whose transaction is final.", s.state.plans_completed);
        metric("plans_failed", "gauge", "Plans that cannot be built.", s.state.plans_failed);
        metric(
            "signing_reattempts_pending",
            "gauge",
            "Attempts beyond the first of unfinished signings.",
            s.state.reattempts_pending,
        );
        metric("outbox_messages", "gauge", "Messages to the coordinator not yet acknowledged.", s.state.outbox);
        metric("frames_in_total", "counter", "Frames received from the coordinator link.", s.core.frames_in);
        metric(
            "frames_refused_total",
            "counter",
            "Frames refused (malformed, not signed by the coordinator).",
            s.core.refused_frames,
        );
        metric("frames_duplicate_total", "counter", "Redelivered frames recognised.", s.core.duplicates);
        metric(
            "frames_sequence_conflict_total",
            "counter",
            "Frames re-using a handled sequence id with another command (the coordinator lost its state).",
            s.core.sequence_conflicts,
        );
        metric(
            "commands_refused_total",
            "counter",
            "Authentic commands refused as inconsistent.",
            s.core.refused_commands,
        );
        metric("messages_out_total", "counter", "Messages sent to the coordinator.", s.core.messages_out);
        metric("messages_resent_total", "counter", "Messages re-sent for lack of acknowledgement.", s.core.resent);
        metric("blames_total", "counter", "Participants blamed.", s.core.blames);
        metric("blocks_scanned_total", "counter", "Final blocks scanned.", s.core.blocks_scanned);
        metric(
            "deposits_below_minimum_total",
            "counter",
            "Deposits below the chain's minimum, neither credited nor spent.",
            s.core.deposits_below_minimum,
        );
        metric(
            "blocks_refused_total",
            "counter",
            "Blocks from the node that did not parse, were inconsistent, lacked their proof of work or were off its own chain.",
            s.core.refused_blocks,
        );
        metric(
            "blocks_parent_rechecked_total",
            "counter",
            "Blocks naming a parent other than the block scanned below them (that height fetched again).",
            s.core.parent_rechecks,
        );
        metric("transactions_signed_total", "counter", "Transactions signed.", s.core.transactions_signed);
        metric("node_errors_total", "counter", "Failed node calls (all kinds).", s.edges.node_errors);
        metric("node_timeouts_total", "counter", "Node calls that timed out.", s.edges.node_timeouts);
        metric("node_malformed_total", "counter", "Node replies that were malformed or lied.", s.edges.node_malformed);
        metric(
            "link_errors_total",
            "counter",
            "Failed sends or receives on the coordinator link.",
            s.edges.link_errors,
        );
        metric("published_total", "counter", "Transactions the node accepted.", s.edges.published);
        metric(
            "publish_refused_total",
            "counter",
            "Transactions the node refused (often: already known).",
            s.edges.publish_refused,
        );
        metric(
            "healthy",
            "gauge",
            "1 when the daemon is healthy (see /health).",
            u64::from(s.health(Instant::now()).is_ok()),
        );
        out
    }
}

/// Serves `GET /metrics` and `GET /health` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // The request line and headers (a request may arrive in several segments).
            let mut request = Vec::new();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                let mut buffer = [0u8; 1024];
                match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
                    Ok(Ok(read)) if read > 0 => request.extend_from_slice(&buffer[..read]),
                    _ => return,
                }
            }
            let line = String::from_utf8_lossy(&request);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = match path {
                "/metrics" => ("200 OK", metrics.render()),
                "/health" => match metrics.snapshot().health(Instant::now()) {
                    Ok(()) => ("200 OK", "ok\n".to_string()),
                    Err(reason) => ("503 Service Unavailable", format!("{reason}\n")),
                },
                _ => ("404 Not Found", "see /metrics and /health\n".to_string()),
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use processor_core::db::MemDb;

    #[test]
    fn an_empty_processor_reads_as_zeros_and_renders_every_metric() {
        let state = StateGauges::read(&MemDb::new(), 100, 6).unwrap();
        assert_eq!(state, StateGauges { tip: 100, final_height: 94, ..StateGauges::default() });
        let metrics = Metrics::default();
        metrics.update(|m| {
            m.chain = "bitcoin".into();
            m.state = state;
            m.edges.node_timeouts = 3;
            m.unhealthy = Some("halted".into());
        });
        let text = metrics.render();
        assert!(text.contains("processor_final_height{chain=\"bitcoin\"} 94\n"), "{text}");
        assert!(text.contains("processor_node_timeouts_total{chain=\"bitcoin\"} 3\n"), "{text}");
        assert!(text.contains("processor_healthy{chain=\"bitcoin\"} 0\n"), "{text}");
        // Every sample has its HELP and TYPE lines.
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE")).count(), samples);
    }

    #[test]
    fn health_fails_on_a_stalled_loop_and_a_link_down_past_their_bounds() {
        let start = Instant::now();
        let mut snapshot = Snapshot { progress_at: Some(start), ..Snapshot::default() };
        assert_eq!(snapshot.health(start + LOOP_STALLED_AFTER), Ok(()));
        let stalled = snapshot.health(start + LOOP_STALLED_AFTER + Duration::from_secs(1)).unwrap_err();
        assert!(stalled.contains("no progress for 31 s"), "{stalled}");

        snapshot.progress_at = Some(start + Duration::from_secs(100));
        snapshot.link_failing_since = Some(start + Duration::from_secs(30));
        assert_eq!(snapshot.health(start + Duration::from_secs(90)), Ok(()));
        let down = snapshot.health(start + Duration::from_secs(91)).unwrap_err();
        assert!(down.contains("broker link has been failing for 61 s"), "{down}");

        // What the loop found comes first.
        snapshot.unhealthy = Some("halted: a final block changed".into());
        assert_eq!(snapshot.health(start), Err("halted: a final block changed".into()));
    }

    /// Every `processor_*` name in `text`.
    fn metric_names(text: &str) -> Vec<String> {
        text.match_indices("processor_")
            .map(|(at, _)| text[at..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>())
            .collect()
    }

    /// The alert rules and the dashboard shipped in `deploy/` parse, are complete, and name
    /// only metrics the daemon exports (a renamed metric fails here, not silently in Grafana).
    #[test]
    fn the_shipped_alerts_and_dashboard_name_only_metrics_that_exist() {
        let rendered = Metrics::default().render();
        let exported: std::collections::BTreeSet<String> = rendered
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|line| line.split_whitespace().next())
            .map(String::from)
            .collect();
        // Prometheus rule files are YAML; this one is in YAML's JSON subset, so it parses here.
        let alerts: serde_json::Value =
            serde_json::from_str(include_str!("../../deploy/prometheus-alerts.yml")).expect("the alert rules parse");
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../deploy/grafana-dashboard.json")).expect("the dashboard parses");

        let rules: Vec<&serde_json::Value> = alerts["groups"]
            .as_array()
            .expect("rule groups")
            .iter()
            .flat_map(|group| group["rules"].as_array().expect("rules").iter())
            .collect();
        let mut names = std::collections::BTreeSet::new();
        let mut expressions = Vec::new();
        for rule in &rules {
            let name = rule["alert"].as_str().expect("an alert name");
            assert!(names.insert(name), "alert {name} twice");
            assert!(rule["for"].is_string() && rule["annotations"]["summary"].is_string(), "{name} incomplete");
            assert!(matches!(rule["labels"]["severity"].as_str(), Some("critical" | "warning")), "{name}'s severity");
            expressions.push(rule["expr"].as_str().expect("an expression").to_string());
        }
        let mut panel_ids = std::collections::BTreeSet::new();
        for panel in dashboard["panels"].as_array().expect("panels") {
            assert!(panel_ids.insert(panel["id"].as_u64().expect("a panel id")), "panel id twice");
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "a panel without a query");
            expressions.extend(targets.iter().map(|t| t["expr"].as_str().expect("a query").to_string()));
        }
        let mut used = std::collections::BTreeSet::new();
        for expression in &expressions {
            let named = metric_names(expression);
            assert!(!named.is_empty(), "{expression} names no metric");
            for name in named {
                assert!(exported.contains(&name), "{expression} names {name}, which the daemon does not export");
                used.insert(name);
            }
        }
        // What an operator must be woken for has its alert.
        for needed in
            ["processor_halted", "processor_healthy", "processor_plans_failed", "processor_frames_refused_total"]
        {
            assert!(rules.iter().any(|rule| rule["expr"].as_str().is_some_and(|e| e.contains(needed))), "{needed}");
        }
        assert!(used.len() >= 15, "the dashboard and alerts cover most metrics: {used:?}");
    }

    #[test]
    fn a_tip_below_the_confirmations_has_no_final_height() {
        let state = StateGauges::read(&MemDb::new(), 3, 6).unwrap();
        assert_eq!(state.final_height, 0);
    }
}
