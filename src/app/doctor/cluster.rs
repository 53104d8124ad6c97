//! The swarm's checks (`[cluster]`): NATS reachable with these
//! credentials, JetStream and the streams there, and how far behind each
//! reader is. Each failure is shown as the link's error says it: what went
//! wrong, and the fix for that cause.

use super::{Check, Level, bad, ok};
use crate::cluster::ClusterError;
use crate::config::Config;

/// A failed step, its problem and its fix as the error says them.
fn failed(check: &'static str, e: &ClusterError) -> Check {
    bad(check, Level::Fail, e.problem(), e.fix())
}

/// The swarm's checks; none on a single machine.
pub async fn cluster_checks(config: &Config) -> Vec<Check> {
    let Some(cluster) = &config.cluster else {
        return Vec::new();
    };
    let link = match crate::cluster::Link::connect(std::sync::Arc::new(cluster.clone())).await {
        Ok(link) => link,
        Err(e) => return vec![failed("nats", &e)],
    };
    let mut out = vec![ok(
        "nats",
        format!(
            "connected to {} as node {} ({})",
            cluster.nats.url,
            cluster.node,
            if cluster.is_hub() {
                "the hub"
            } else {
                "a node"
            }
        ),
    )];
    if !cluster.is_hub() {
        out.push(match crate::cluster::node::check(&link).await {
            Ok(waiting) => ok(
                "streams",
                format!("this node's consumer is there; {waiting} message(s) wait for it"),
            ),
            Err(e) => failed("streams", &e),
        });
        link.close().await;
        return out;
    }
    let nodes = crate::cluster::hub::nodes(&config.agents, &cluster.hub);
    match crate::cluster::hub::lag(&link, &nodes).await {
        Ok(lags) => {
            out.push(ok(
                "streams",
                "the node and hub streams and every consumer are there",
            ));
            let behind: Vec<String> = lags
                .iter()
                .filter(|l| l.pending + l.unacked > 0)
                .map(|l| {
                    format!(
                        "{}: {} waiting, {} unacknowledged{}",
                        l.reader,
                        l.pending,
                        l.unacked,
                        if l.reading { "" } else { " (nobody reading)" }
                    )
                })
                .collect();
            out.push(if behind.is_empty() {
                ok("consumer lag", "every machine has taken all its work")
            } else {
                bad(
                    "consumer lag",
                    Level::Warn,
                    behind.join("; "),
                    "start acp run on the machines named (acp run --node NAME); their work waits \
                     in JetStream until then",
                )
            });
        }
        Err(e) => out.push(failed("streams", &e)),
    }
    link.close().await;
    out
}
