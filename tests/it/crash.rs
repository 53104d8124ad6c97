//! SIGKILL at any moment loses no accepted message and duplicates no inbox
//! file.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::support::{Root, count, status, stdout, wait_until};

/// A small xorshift generator: the test prints its seed so a failure can be
/// replayed with `ACP_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn seed() -> u64 {
    std::env::var("ACP_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::try_from(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
                    % u128::from(u64::MAX),
            )
            .unwrap()
                | 1
        })
}

#[test]
fn sigkill_of_senders_and_dispatchers_mid_burst_loses_and_duplicates_nothing() {
    let seed = seed();
    eprintln!("crash test seed: {seed} (replay with ACP_TEST_SEED={seed})");
    let root = Root::new(4);
    root.fast();
    let accepted: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let mut kills = 0;

    std::thread::scope(|s| {
        let senders: Vec<_> = (0..3)
            .map(|t| {
                let (root, accepted) = (&root, &accepted);
                s.spawn(move || {
                    for i in 0..40 {
                        let agent = format!("Agent-{}", (t + i) % 4 + 1);
                        let out = root.run(&["send", "--to", &agent, &format!("burst {t}/{i}")]);
                        assert!(
                            out.status.success(),
                            "{}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                        let id = stdout(&out).lines().next().unwrap().to_owned();
                        accepted.lock().unwrap().push((agent, id));
                    }
                })
            })
            .collect();
        // Senders killed at random points: before, during or after storing.
        let killer = {
            let (root, accepted) = (&root, &accepted);
            s.spawn(move || {
                let mut rng = Rng(seed ^ 0x9e37_79b9);
                for i in 0..25 {
                    let agent = format!("Agent-{}", i % 4 + 1);
                    let mut child = root
                        .acp()
                        .args(["send", "--to", &agent, &format!("doomed {i}")])
                        .stdout(Stdio::piped())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap();
                    // A random kill point: before, during or after storing.
                    std::thread::sleep(Duration::from_millis(rng.below(25)));
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    if out.status.success() {
                        accepted
                            .lock()
                            .unwrap()
                            .push((agent, stdout(&out).lines().next().unwrap().to_owned()));
                    }
                }
            })
        };
        // The service, killed and restarted at random points (the random
        // pauses are the kill points, not waits for an event) until the
        // senders are done and it was killed at least twice; between runs
        // the senders deliver their own messages.
        let mut rng = Rng(seed);
        while kills < 2
            || !senders
                .iter()
                .all(std::thread::ScopedJoinHandle::is_finished)
        {
            let service = root.service();
            // A random kill point, and a random gap before the restart.
            std::thread::sleep(Duration::from_millis(30 + rng.below(250)));
            service.kill();
            kills += 1;
            std::thread::sleep(Duration::from_millis(rng.below(100)));
        }
        killer.join().unwrap();
        for sender in senders {
            sender.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
    });
    assert!(done.load(Ordering::SeqCst));
    assert!(kills >= 2, "the service was killed only {kills} time(s)");

    // Restart: everything left queued or mid-delivery is finished.
    let service = root.service();
    wait_until(Duration::from_secs(60), || {
        let s = status(&root);
        count(&s, "queued") == 0 && count(&s, "delivering") == 0
    });
    drop(service);

    let accepted = accepted.into_inner().unwrap();
    assert!(accepted.len() >= 120, "{}", accepted.len());
    let mut files_by_agent = BTreeMap::new();
    for agent in ["Agent-1", "Agent-2", "Agent-3", "Agent-4"] {
        let ids = root.inbox_ids(agent);
        for (id, n) in &ids {
            assert_eq!(*n, 1, "{agent} got {id} {n} times");
        }
        let listed = root.run(&[
            "inbox", "list", "--agent", agent, "--json", "--limit", "100000",
        ]);
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        let listed = listed.as_array().unwrap();
        assert_eq!(
            listed.len(),
            ids.len(),
            "{agent}: every stored message has exactly one file"
        );
        for entry in listed {
            assert_eq!(entry["state"], "delivered", "{entry}");
            assert!(ids.contains_key(entry["message"]["id"].as_str().unwrap()));
        }
        files_by_agent.insert(agent, ids);
    }
    for (agent, id) in &accepted {
        assert_eq!(
            files_by_agent[agent.as_str()].get(id),
            Some(&1),
            "accepted {id} for {agent} is missing"
        );
    }
    let s = status(&root);
    assert_eq!(count(&s, "failed"), 0);
    eprintln!(
        "{} accepted, {} service kills, {} delivered",
        accepted.len(),
        kills,
        count(&s, "delivered")
    );
}

#[test]
fn sigkill_while_draining_a_backlog_resumes_every_delivery_exactly_once() {
    let seed = seed();
    eprintln!("backlog crash test seed: {seed} (replay with ACP_TEST_SEED={seed})");
    let root = Root::new(4);
    root.fast();
    // A backlog stored through the library, with no dispatcher running.
    let total = 3000;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app = std::sync::Arc::new(acp::app::App::open(root.config()).unwrap());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..total {
            let app = std::sync::Arc::clone(&app);
            tasks.spawn(async move {
                let request = acp::app::SendRequest {
                    draft: acp::model::Draft {
                        from: "tester".into(),
                        to: acp::model::Recipient::Agent(
                            format!("Agent-{}", i % 4 + 1).parse().unwrap(),
                        ),
                        kind: acp::model::Kind::Human,
                        priority: acp::model::Priority::Normal,
                        body: format!("backlog {i}"),
                        tags: vec![],
                        reply_to: None,
                    },
                    via: acp::model::Via::Auto,
                };
                app.send(request).await.unwrap();
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    });

    // The service is killed once it is seen delivering (a random number of
    // deliveries after it started), until a kill has left deliveries
    // mid-flight or the backlog is drained.
    let mut rng = Rng(seed);
    let mut interrupted_mid_batch = 0;
    let drained = |s: &serde_json::Value| count(s, "queued") == 0 && count(s, "delivering") == 0;
    loop {
        let s = status(&root);
        if drained(&s) || interrupted_mid_batch >= 2 {
            break;
        }
        let target = count(&s, "delivered") + 1 + rng.below(150);
        let service = root.service();
        wait_until(Duration::from_secs(120), || {
            let s = status(&root);
            count(&s, "delivered") >= target || drained(&s)
        });
        service.kill();
        if count(&status(&root), "delivering") > 0 {
            interrupted_mid_batch += 1;
        }
    }
    assert!(
        interrupted_mid_batch > 0,
        "no kill landed mid-delivery; the test proved nothing"
    );

    let service = root.service();
    wait_until(Duration::from_secs(120), || {
        let s = status(&root);
        count(&s, "queued") == 0 && count(&s, "delivering") == 0
    });
    drop(service);
    let mut files = 0;
    for agent in ["Agent-1", "Agent-2", "Agent-3", "Agent-4"] {
        let ids = root.inbox_ids(agent);
        assert!(ids.values().all(|&n| n == 1), "{agent} has a duplicate");
        files += ids.len();
    }
    assert_eq!(files, total, "every message has exactly one inbox file");
    assert_eq!(count(&status(&root), "delivered"), total as u64);
    eprintln!("{interrupted_mid_batch} kill(s) landed mid-batch");
}
