// Over 400 lines: one swarm harness (a real nats-server, a hub and two node roots as separate acp
// processes) and the scenarios that share it.

//! Several machines through a real `nats-server -js` on 127.0.0.1: a hub
//! root and two node roots (separate directories standing for separate
//! machines), each its own `acp run`. Every scenario ends with each
//! message in exactly one inbox file, on the machine that runs its agent,
//! and the hub's store saying it was delivered there.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Root, Service, stderr, stdout, wait_until};

/// Which machine runs which agent.
const AGENTS: &[(&str, &str)] = &[
    ("Agent-1", "desk-1"),
    ("Agent-2", "desk-2"),
    ("Agent-3", "desk-2"),
    ("Agent-4", "desk-3"),
    ("Agent-5", "desk-3"),
];

fn nats_server() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join("nats-server");
        if p.exists() {
            return p;
        }
    }
    panic!("nats-server is missing: scripts/test.sh installs it (apt-get install nats-server)");
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real nats-server with JetStream, its store in a temporary directory
/// that outlives restarts.
pub struct Nats {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    conf: Option<PathBuf>,
    jetstream: bool,
}

impl Nats {
    pub fn start(conf: Option<&str>) -> Self {
        Self::start_with(conf, true)
    }

    /// A server without JetStream (`-js` left out), as Debian's package
    /// runs it.
    pub fn without_jetstream(conf: Option<&str>) -> Self {
        Self::start_with(conf, false)
    }

    fn start_with(conf: Option<&str>, jetstream: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = conf.map(|text| {
            let path = dir.path().join("nats.conf");
            fs::write(&path, text).unwrap();
            path
        });
        let mut nats = Self {
            child: None,
            port: free_port(),
            dir,
            conf,
            jetstream,
        };
        nats.resume();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again), on the same port and store.
    pub fn resume(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .unwrap();
        let mut cmd = Command::new(nats_server());
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.jetstream {
            cmd.arg("-js").arg("-sd").arg(self.dir.path().join("js"));
        }
        if let Some(conf) = &self.conf {
            cmd.arg("-c").arg(conf);
        }
        self.child = Some(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap());
        // Ready when it accepts connections.
        wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    /// Stops the server (SIGTERM, waited for).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            child.wait().unwrap();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A delivery as the hub's store records it: state, method, machine.
type Recorded = (String, Option<String>, Option<String>);

/// Three roots standing for three machines, one config between them.
pub struct Swarm {
    pub hub: Root,
    pub nodes: BTreeMap<&'static str, Root>,
}

impl Swarm {
    /// The hub (desk-1) and the nodes desk-2 and desk-3, configured for
    /// `nats`, with fast heartbeats and retries.
    pub fn new(url: &str) -> Self {
        let make = |node: &str| {
            let root = Root::new(5);
            root.fast();
            for (agent, on) in AGENTS {
                root.agent_config(agent, &format!("node = \"{on}\""));
            }
            let path = root.path().join("config/acp.toml");
            let mut text = fs::read_to_string(&path).unwrap();
            text.push_str(
                "\n[cluster]\nhub = \"desk-1\"\nheartbeat_ms = 200\npresence_ttl_ms = 1500\n",
            );
            fs::write(&path, text).unwrap();
            fs::write(
                root.path().join(".env"),
                format!("ACP_NATS_URL={url}\nACP_NODE={node}\n"),
            )
            .unwrap();
            root
        };
        let hub = make("desk-1");
        let nodes = [("desk-2", make("desk-2")), ("desk-3", make("desk-3"))]
            .into_iter()
            .collect();
        Self { hub, nodes }
    }

    /// The root of the machine running `agent`.
    pub fn root_of(&self, agent: &str) -> &Root {
        let node = AGENTS.iter().find(|(a, _)| *a == agent).unwrap().1;
        if node == "desk-1" {
            &self.hub
        } else {
            &self.nodes[node]
        }
    }

    pub fn node(&self, name: &str) -> &Root {
        &self.nodes[name]
    }

    /// Sends from the hub with `acp send`; returns the message id.
    pub fn send(&self, agent: &str, body: &str) -> String {
        let out = self.hub.run(&["--json", "send", "--to", agent, body]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    /// The hub's deliveries: (message, agent) -> (state, method, node).
    pub fn hub_deliveries(&self) -> BTreeMap<(String, String), Recorded> {
        let db = rusqlite::Connection::open(self.hub.path().join("data/acp.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut stmt = db
            .prepare("SELECT message_id, agent, state, method, node FROM deliveries")
            .unwrap();
        stmt.query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// Waits until the hub records every one of `sent` delivered, then
    /// checks each landed once, in its agent's inbox on its machine, and
    /// nowhere else: 0 lost, 0 duplicated.
    pub fn assert_all_delivered_once(&self, sent: &[(String, String)], limit: Duration) {
        wait_until(limit, || {
            let d = self.hub_deliveries();
            sent.iter().all(|(id, agent)| {
                d.get(&(id.clone(), agent.clone()))
                    .is_some_and(|(state, ..)| state == "delivered")
            })
        });
        let deliveries = self.hub_deliveries();
        for (id, agent) in sent {
            let (_, method, node) = &deliveries[&(id.clone(), agent.clone())];
            let home = AGENTS.iter().find(|(a, _)| a == agent).unwrap().1;
            assert_eq!(method.as_deref(), Some("inbox"), "{id} to {agent}");
            if home == "desk-1" {
                assert_eq!(node.as_deref(), None, "{id} was delivered on the hub");
            } else {
                assert_eq!(node.as_deref(), Some(home), "{id} to {agent}");
            }
        }
        // File by file, on every machine and every agent.
        let mut found: BTreeMap<(String, String), usize> = BTreeMap::new();
        for root in std::iter::once(&self.hub).chain(self.nodes.values()) {
            for (agent, _) in AGENTS {
                for (id, n) in root.inbox_ids(agent) {
                    let here = std::ptr::eq(root, self.root_of(agent));
                    assert!(here, "{id} landed in {agent}'s inbox on the wrong machine");
                    *found.entry((id, (*agent).to_owned())).or_default() += n;
                }
            }
        }
        for (id, agent) in sent {
            assert_eq!(
                found.get(&(id.clone(), agent.clone())),
                Some(&1),
                "{id} to {agent}: inbox files"
            );
        }
        assert_eq!(
            found.len(),
            sent.len(),
            "inbox files for messages never sent"
        );
    }
}

/// Starts `acp run` on a node root.
pub(crate) fn start(root: &Root) -> Service {
    root.service()
}

/// Runs `acp run` where it must stop by itself: killed (and the test
/// failed) if it is still running after 30 s.
fn run_briefly(root: &Root) -> std::process::Output {
    let child = root
        .acp()
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output().unwrap();
        let _ = done.send(());
        out
    });
    if finished.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!(
            "acp run did not stop by itself: {:?}",
            waiter.join().unwrap()
        );
    }
    waiter.join().unwrap()
}

/// Sends `n` messages round the agents, starting at `from`.
fn burst(swarm: &Swarm, from: usize, n: usize) -> Vec<(String, String)> {
    (from..from + n)
        .map(|i| {
            let agent = AGENTS[i % AGENTS.len()].0;
            (
                swarm.send(agent, &format!("message {i} for {agent}")),
                agent.to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_burst_reaches_agents_on_both_nodes_once() {
    let nats = Nats::start(None);
    let swarm = Swarm::new(&nats.url());
    // Machines start in any order: nodes started before the hub wait for
    // it to set up JetStream.
    let _d2 = start(swarm.node("desk-2"));
    let _d3 = start(swarm.node("desk-3"));
    let _hub = start(&swarm.hub);
    let mut sent = burst(&swarm, 0, 60);
    // An agent on desk-2 writes to agents on desk-3 and the hub: through
    // the hub, which routes each to its machine.
    for to in ["Agent-4", "Agent-1"] {
        let out = swarm
            .node("desk-2")
            .acp()
            .env("ACP_AGENT", "Agent-2")
            .args(["--json", "send", "--to", to, "from the laptop"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        sent.push((v["id"].as_str().unwrap().to_owned(), to.to_owned()));
    }
    swarm.assert_all_delivered_once(&sent, Duration::from_secs(60));
    // The hub's receipt names the machine.
    let (id, agent) = &sent[1];
    let out = swarm.hub.run(&["inbox", "read", id]);
    assert!(
        stdout(&out).contains("delivered by inbox on desk-2"),
        "{agent}: {}",
        stdout(&out)
    );
}

#[test]
fn a_node_killed_mid_burst_loses_and_duplicates_nothing() {
    let nats = Nats::start(None);
    let swarm = Swarm::new(&nats.url());
    let _hub = start(&swarm.hub);
    let d2 = start(swarm.node("desk-2"));
    let _d3 = start(swarm.node("desk-3"));
    let mut sent = burst(&swarm, 0, 20);
    // Killed once it is seen delivering (its inbox has files).
    wait_until(Duration::from_secs(30), || {
        !swarm.node("desk-2").inbox_ids("Agent-2").is_empty()
    });
    d2.kill();
    sent.extend(burst(&swarm, 20, 20));
    let _d2 = start(swarm.node("desk-2"));
    sent.extend(burst(&swarm, 40, 10));
    swarm.assert_all_delivered_once(&sent, Duration::from_secs(60));
}

#[test]
fn nats_stopped_and_restarted_mid_burst_loses_and_duplicates_nothing() {
    let mut nats = Nats::start(None);
    let swarm = Swarm::new(&nats.url());
    let _hub = start(&swarm.hub);
    let _d2 = start(swarm.node("desk-2"));
    let _d3 = start(swarm.node("desk-3"));
    let mut sent = burst(&swarm, 0, 20);
    nats.stop();
    // Sent while NATS is away: stored on the hub, waiting.
    sent.extend(burst(&swarm, 20, 20));
    nats.resume();
    sent.extend(burst(&swarm, 40, 10));
    swarm.assert_all_delivered_once(&sent, Duration::from_secs(90));
}

#[test]
fn a_node_offline_for_the_whole_burst_gets_it_when_it_starts_and_the_hub_restarts() {
    let nats = Nats::start(None);
    let swarm = Swarm::new(&nats.url());
    let hub = start(&swarm.hub);
    let _d2 = start(swarm.node("desk-2"));
    // desk-3 never started: its work waits in JetStream.
    let mut sent = burst(&swarm, 0, 30);
    let away: Vec<_> = sent
        .iter()
        .filter(|(_, a)| ["Agent-4", "Agent-5"].contains(&a.as_str()))
        .cloned()
        .collect();
    wait_until(Duration::from_secs(30), || {
        let d = swarm.hub_deliveries();
        away.iter()
            .all(|(id, agent)| d[&(id.clone(), agent.clone())].0 == "delivering")
    });
    // The receipt says why it waits.
    let out = swarm.hub.run(&["inbox", "read", &away[0].0]);
    assert!(
        stdout(&out).contains("queued: node desk-3 offline"),
        "{}",
        stdout(&out)
    );
    assert!(swarm.node("desk-3").inbox_ids("Agent-4").is_empty());
    // acp doctor says how much waits for desk-3, and that nobody reads it.
    let out = swarm.hub.run(&["--json", "doctor"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} check: {report}"))
    };
    assert_eq!(check("nats")["level"], "ok", "{report}");
    let lag = check("consumer lag");
    assert_eq!(lag["level"], "warn", "{report}");
    let detail = lag["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("desk-3: {} waiting", away.len()))
            && detail.contains("nobody reading"),
        "{detail}"
    );
    // The hub restarts while desk-3 is still away.
    let (status, log) = hub.terminate();
    assert!(status.success(), "{log}");
    let _hub = start(&swarm.hub);
    sent.extend(burst(&swarm, 30, 10));
    let _d3 = start(swarm.node("desk-3"));
    swarm.assert_all_delivered_once(&sent, Duration::from_secs(60));
    // acp agents shows each machine and its last heartbeat.
    wait_until(Duration::from_secs(20), || {
        let out = swarm.hub.run(&["--json", "agents"]);
        let agents: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        agents.as_array().unwrap().iter().all(|a| {
            a["node_presence"]
                .as_str()
                .is_some_and(|p| p.starts_with("online, last heartbeat"))
        })
    });
    let text = stdout(&swarm.hub.run(&["agents"]));
    assert!(
        text.contains("node:     desk-3 (online, last heartbeat"),
        "{text}"
    );
}

/// nats-server's authorization: the permissions block of
/// docs/several-machines.md. The hub manages JetStream; each node may read
/// only its own subjects.
pub(crate) fn auth_conf() -> String {
    let hub = r#""acp.acp.>", "$JS.>", "$KV.acp_acp_presence.>", "_INBOX_desk-1.>""#;
    let node = |name: &str| {
        format!(
            r#"{{ user: "{name}", password: "{name}-secret", permissions: {{
                publish: {{ allow: ["acp.acp.hub.{name}", "$JS.API.CONSUMER.INFO.ACP_acp_NODES.node-{name}",
                    "$JS.API.CONSUMER.MSG.NEXT.ACP_acp_NODES.node-{name}", "$JS.ACK.ACP_acp_NODES.node-{name}.>",
                    "$JS.API.STREAM.INFO.KV_acp_acp_presence", "$KV.acp_acp_presence.{name}"] }},
                subscribe: {{ allow: ["_INBOX_{name}.>"] }} }} }}"#
        )
    };
    format!(
        "authorization {{ users = [ {{ user: \"hub\", password: \"hub-secret\", permissions: {{ \
         publish: {{ allow: [{hub}] }}, subscribe: {{ allow: [{hub}] }} }} }}, {}, {} ] }}\n",
        node("desk-2"),
        node("desk-3")
    )
}

#[test]
fn wrong_credentials_or_a_forbidden_subject_stop_a_node_clearly() {
    let nats = Nats::start(Some(&auth_conf()));
    let swarm = Swarm::new(&nats.url());
    let creds = |root: &Root, node: &str, user: &str, password: &str| {
        fs::write(
            root.path().join(".env"),
            format!(
                "ACP_NATS_URL={}\nACP_NODE={node}\nACP_NATS_USER={user}\nACP_NATS_PASSWORD={password}\n",
                nats.url()
            ),
        )
        .unwrap();
    };
    creds(&swarm.hub, "desk-1", "hub", "hub-secret");
    let _hub = start(&swarm.hub);
    let d2 = swarm.node("desk-2");

    // A wrong password: refused at once, exit 2, the password not shown.
    creds(d2, "desk-2", "desk-2", "not-the-password");
    let out = run_briefly(d2);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("authorization violation") && err.contains("ACP_NATS_PASSWORD"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-password"),
        "the password is in the log: {err}"
    );

    // desk-3's user reading desk-2's work: forbidden, said clearly.
    creds(d2, "desk-2", "desk-3", "desk-3-secret");
    let out = run_briefly(d2);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("NATS refused") && err.contains("node desk-2") && err.contains("permissions"),
        "{err}"
    );
    assert!(!err.contains("desk-3-secret"), "{err}");

    // With its own user it runs and delivers.
    creds(d2, "desk-2", "desk-2", "desk-2-secret");
    let _d2 = start(d2);
    let sent = [(swarm.send("Agent-2", "hello desk-2"), "Agent-2".to_owned())];
    wait_until(Duration::from_secs(30), || {
        swarm.hub_deliveries()[&(sent[0].0.clone(), sent[0].1.clone())].0 == "delivered"
    });
    assert_eq!(d2.inbox_ids("Agent-2").len(), 1);
}

#[test]
fn a_discord_message_to_an_agent_on_another_machine_gets_its_true_receipt() {
    use crate::discord::{OPERATOR, assert_edit_says, command, original_edit, registered, spawn};
    use crate::standin::StandIn;
    use serde_json::json;

    let nats = Nats::start(None);
    let swarm = Swarm::new(&nats.url());
    let standin = StandIn::start();
    // The hub runs the bot; desk-2 runs, desk-3 is away.
    let _hub = spawn(&swarm.hub, &standin, "standin-token", "run");
    registered(&standin);
    let _d2 = start(swarm.node("desk-2"));
    let limit = Duration::from_secs(30);

    let id = 400_000_000_000_000_501;
    let from = standin.requests().len();
    command(
        &standin,
        id,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-2"}, {"name": "text", "type": 3, "value": "to the laptop"}]),
        &[OPERATOR],
    );
    let edit = original_edit(&standin, from, id, limit);
    assert_edit_says(&edit, "✅ Agent-2: delivered by inbox on desk-2");
    assert_eq!(swarm.node("desk-2").inbox_ids("Agent-2").len(), 1);

    // desk-3 is away: the first reply says so instead of "delivering…",
    // and the receipt follows once it is back.
    let id = 400_000_000_000_000_502;
    let from = standin.requests().len();
    let reply = command(
        &standin,
        id,
        "message",
        &json!([{"name": "agent", "type": 3, "value": "Agent-4"}, {"name": "text", "type": 3, "value": "to the cloud box"}]),
        &[OPERATOR],
    );
    let first = reply["data"]["content"].as_str().unwrap_or_default();
    assert!(first.contains("queued: node desk-3 offline"), "{reply}");
    let _d3 = start(swarm.node("desk-3"));
    let edit = original_edit(&standin, from, id, limit);
    assert_edit_says(&edit, "✅ Agent-4: delivered by inbox on desk-3");
    assert_eq!(swarm.node("desk-3").inbox_ids("Agent-4").len(), 1);
    assert!(swarm.hub.inbox_ids("Agent-4").is_empty());
    standin.assert_no_violations();
}
