//! Prompts and states of agents on another machine, answered from the
//! hub's Discord, exactly once, through a real `nats-server -js` with the
//! permissions of docs/several-machines.md: a fake agent on desk-2 runs `acp hook`, the hub's
//! real bot posts the prompt to the stand-in Discord with its buttons, a
//! press on the hub reaches the hook waiting on desk-2, and an answer
//! desk-2 had first stays there and is what the hub's post says.

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::approvals::{
    button, buttons, claude_request, edited, hook, hook_now, open_prompts, prompt_id, state_of,
};
use crate::cluster::{Nats, Swarm, auth_conf, start};
use crate::discord::{Bot, OPERATOR, assert_ephemeral, dispatch, registered, spawn};
use crate::outbox::swarm as swarm_channel;
use crate::standin::{CHANNEL_ID, Post, StandIn, button_press};
use crate::support::{Root, Service, stderr, stdout, wait_until};
use crate::tmux::Tmux;

/// Long enough for NATS clients to reconnect after a restart.
const LIMIT: Duration = Duration::from_secs(90);

/// The swarm with the NATS users of docs/several-machines.md: the hub (desk-1) runs the bot
/// against the stand-in; desk-2 runs `acp run`.
struct Desk {
    swarm: Swarm,
    _bot: Bot,
    desk2: Option<Service>,
}

impl Desk {
    fn start(nats: &Nats, standin: &StandIn) -> Self {
        Self::start_with(nats, standin, |_| {})
    }

    /// [`Desk::start`], with desk-2's root set up by `desk2` first.
    fn start_with(nats: &Nats, standin: &StandIn, desk2: impl FnOnce(&Root)) -> Self {
        let swarm = Swarm::new(&nats.url());
        for (root, node, user) in [
            (&swarm.hub, "desk-1", "hub"),
            (swarm.node("desk-2"), "desk-2", "desk-2"),
            (swarm.node("desk-3"), "desk-3", "desk-3"),
        ] {
            std::fs::write(
                root.path().join(".env"),
                format!(
                    "ACP_NATS_URL={}\nACP_NODE={node}\nACP_NATS_USER={user}\nACP_NATS_PASSWORD={user}-secret\n",
                    nats.url()
                ),
            )
            .unwrap();
        }
        swarm_channel(&swarm.hub);
        // desk-2 has the same Discord settings, and even the token (a
        // copied .env): it still posts nothing itself, the hub does.
        let d2 = swarm.node("desk-2");
        swarm_channel(d2);
        d2.edit_config(
            "api_base = \"\"",
            &format!("api_base = \"{}\"", standin.base),
        );
        let env = d2.path().join(".env");
        let mut text = std::fs::read_to_string(&env).unwrap();
        text.push_str("DISCORD_TOKEN=standin-token\n");
        std::fs::write(&env, text).unwrap();
        desk2(d2);
        let bot = spawn(&swarm.hub, standin, "standin-token", "run");
        registered(standin);
        let desk2 = Some(start(swarm.node("desk-2")));
        Self {
            swarm,
            _bot: bot,
            desk2,
        }
    }

    fn desk2(&self) -> &Root {
        self.swarm.node("desk-2")
    }

    fn hub(&self) -> &Root {
        &self.swarm.hub
    }
}

/// What a waiting hook printed once it ended by itself within `limit`.
fn hook_printed(mut child: Child, limit: Duration) -> Option<Value> {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < limit, "acp hook never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    (!text.trim().is_empty()).then(|| serde_json::from_str(&text).unwrap())
}

fn behavior(printed: &Value) -> &Value {
    &printed["hookSpecificOutput"]["decision"]["behavior"]
}

/// The prompt's post once the hub's bot has posted it.
fn posted(standin: &StandIn, says: &str) -> Post {
    standin
        .wait_posts(LIMIT, |posts| {
            posts
                .iter()
                .any(|p| p.content.contains("needs approval") && p.content.contains(says))
        })
        .into_iter()
        .find(|p| p.content.contains(says))
        .unwrap()
}

/// How many posts say `says`.
fn posts_saying(standin: &StandIn, says: &str) -> usize {
    standin
        .posts()
        .iter()
        .filter(|p| p.content.contains(says))
        .count()
}

/// Presses `label` on `post` as an operator (user `user`); the answer.
fn press(standin: &StandIn, post: &Post, label: &str, interaction: u64, user: u64) -> Value {
    dispatch(
        standin,
        interaction,
        button_press(
            interaction,
            &button(post, label),
            post.id,
            CHANNEL_ID,
            &[OPERATOR],
            user,
        ),
    )
}

/// A prompt as a root's store holds it: decision, by, answered, and (on a
/// node) whether its final report went to the hub.
fn stored(root: &Root, id: &str) -> (Option<String>, Option<String>, Option<String>, bool) {
    let db = rusqlite::Connection::open(root.path().join("data/acp.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.query_row(
        "SELECT decision, decided_by, answered, outcome_reported_at IS NOT NULL FROM prompts \
         WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .unwrap()
}

#[test]
fn a_prompt_on_a_node_is_answered_once_from_the_hubs_discord() {
    let nats = Nats::start(Some(&auth_conf()));
    let standin = StandIn::start();
    let desk = Desk::start(&nats, &standin);
    let d2 = desk.desk2();

    // An agent on desk-2 asks; the hub's bot posts it with its buttons.
    let waiting = hook(d2, "Agent-2", &claude_request("cargo publish", "s-1"));
    let post = posted(&standin, "Bash: cargo publish");
    assert!(post.content.starts_with("**Agent-2**"), "{post:?}");
    let labels: Vec<String> = buttons(&post).into_iter().map(|(l, _)| l).collect();
    assert_eq!(
        labels,
        ["Allow", "Allow for this session", "Deny", "Show more"]
    );
    // One prompt, one id, on both machines.
    let id = prompt_id(&post);
    assert_eq!(open_prompts(d2)[0]["id"], id.as_str());
    assert_eq!(open_prompts(desk.hub())[0]["id"], id.as_str());
    assert_eq!(state_of(desk.hub(), "Agent-2"), "needs_approval");

    // A press on the hub reaches the hook waiting on desk-2.
    let won = press(&standin, &post, "Allow", 4001, 71);
    assert_eq!(won["type"], 7, "{won}");
    assert!(
        won["data"]["content"]
            .as_str()
            .unwrap()
            .contains("allowed by <@71>"),
        "{won}"
    );
    let printed = hook_printed(waiting, LIMIT).expect("the hook printed the decision");
    assert_eq!(behavior(&printed), "allow", "{printed}");
    // A second press is told it came too late.
    let late = press(&standin, &post, "Deny", 4002, 72);
    assert_ephemeral(&late, "already allowed by <@71>");
    // desk-2 kept the hub's decision (audited there), and its report back
    // changed nothing on the hub.
    wait_until(LIMIT, || stored(d2, &id).3);
    let (decision, by, ..) = stored(d2, &id);
    assert_eq!(decision.as_deref(), Some("allow"));
    assert!(by.unwrap().starts_with("discord:71:"));
    let audit = stdout(&d2.run(&["audit"]));
    assert!(audit.contains("prompt allow"), "{audit}");
    let (decision, by, answered, _) = stored(desk.hub(), &id);
    assert_eq!(decision.as_deref(), Some("allow"));
    assert!(by.unwrap().starts_with("discord:71:"));
    assert_eq!(answered, None);
    assert_eq!(state_of(desk.hub(), "Agent-2"), "working");

    // Answered at desk-2's terminal first (the agent went on in the same
    // session): the hub records it as desk-2's, its post says so, and a
    // press after that is told.
    let waiting = hook(d2, "Agent-3", &claude_request("rm -rf target", "s-2"));
    let post = posted(&standin, "Bash: rm -rf target");
    hook_now(
        d2,
        "Agent-3",
        &json!({"session_id": "s-2", "hook_event_name": "PostToolUse", "tool_name": "Bash"}),
    );
    assert_eq!(hook_printed(waiting, LIMIT), None);
    edited(
        &standin,
        post.id,
        "answered at the terminal by `desk-2:terminal`",
    );
    let late = press(&standin, &post, "Allow", 4003, 73);
    assert_ephemeral(&late, "already answered at the terminal");
    assert_eq!(
        stored(d2, &prompt_id(&post)).0.as_deref(),
        Some("at_terminal")
    );

    // States travel too: done, posted once by the hub, with its words.
    let stop = json!({"session_id": "s-1", "hook_event_name": "Stop", "stop_hook_active": false, "last_assistant_message": "Published 0.2.0."});
    hook_now(d2, "Agent-2", &stop);
    hook_now(d2, "Agent-2", &stop);
    standin.wait_posts(LIMIT, |posts| {
        posts.iter().any(|p| p.content.contains("Published 0.2.0."))
    });
    wait_until(LIMIT, || state_of(desk.hub(), "Agent-2") == "done");
    assert_eq!(posts_saying(&standin, "Published 0.2.0."), 1);

    // An agent of another machine raises nothing here.
    let out = hook(d2, "Agent-4", &claude_request("ls", "s-3"))
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("runs on desk-3"), "{}", stderr(&out));
    assert_eq!(posts_saying(&standin, "🔐"), 2);
    standin.assert_no_violations();
}

#[test]
fn nats_restarted_mid_way_loses_no_prompt_or_decision() {
    let mut nats = Nats::start(Some(&auth_conf()));
    let standin = StandIn::start();
    let mut desk = Desk::start(&nats, &standin);
    let d2 = desk.desk2();
    let a = hook(d2, "Agent-2", &claude_request("make a", "s-a"));
    let c = hook(d2, "Agent-3", &claude_request("make c", "s-c"));
    let post_a = posted(&standin, "Bash: make a");
    let post_c = posted(&standin, "Bash: make c");

    nats.stop();
    // While NATS is away: the hub allows a; desk-2's agent answers c at
    // its terminal and the hub, not knowing, denies it; b is raised on
    // desk-2; desk-2's acp run is killed.
    assert_eq!(press(&standin, &post_a, "Allow", 5001, 81)["type"], 7);
    hook_now(
        d2,
        "Agent-3",
        &json!({"session_id": "s-c", "hook_event_name": "PostToolUse", "tool_name": "Bash"}),
    );
    assert_eq!(hook_printed(c, LIMIT), None);
    assert_eq!(press(&standin, &post_c, "Deny", 5002, 82)["type"], 7);
    let b = hook(d2, "Agent-2", &claude_request("make b", "s-b"));
    wait_until(LIMIT, || {
        open_prompts(d2)
            .iter()
            .any(|p| p["summary"] == "Bash: make b")
    });
    desk.desk2.take().unwrap().kill();
    nats.resume();
    desk.desk2 = Some(start(desk.desk2()));
    let d2 = desk.desk2();

    // The hub's decision reaches a's hook; b is posted and answered.
    let printed = hook_printed(a, LIMIT).expect("a's hook printed the decision");
    assert_eq!(behavior(&printed), "allow", "{printed}");
    let post_b = posted(&standin, "Bash: make b");
    assert_eq!(
        press(&standin, &post_b, "Allow for this session", 5003, 83)["type"],
        7
    );
    let printed = hook_printed(b, LIMIT).expect("b's hook printed the decision");
    assert_eq!(behavior(&printed), "allow", "{printed}");
    assert_eq!(
        printed["hookSpecificOutput"]["decision"]["updatedPermissions"][0]["destination"],
        "session"
    );
    // c: desk-2's answer came first and stays there; the hub keeps its
    // own, and its post says what the agent got.
    edited(
        &standin,
        post_c.id,
        "the agent got another answer on desk-2 first: answered at the terminal",
    );
    let c_id = prompt_id(&post_c);
    assert_eq!(stored(d2, &c_id).0.as_deref(), Some("at_terminal"));
    assert_eq!(stored(desk.hub(), &c_id).0.as_deref(), Some("deny"));
    // Nothing lost, nothing twice.
    for says in ["Bash: make a", "Bash: make b", "Bash: make c"] {
        assert_eq!(posts_saying(&standin, says), 1, "{says}");
    }
    assert!(open_prompts(d2).is_empty());
    assert!(open_prompts(desk.hub()).is_empty());
    standin.assert_no_violations();
}

#[test]
fn a_dialog_in_a_nodes_pane_gets_its_key_from_a_press_on_the_hub() {
    let tmux = Tmux::start(&["Agent-2"]);
    let nats = Nats::start(Some(&auth_conf()));
    let standin = StandIn::start();
    let desk = Desk::start_with(&nats, &standin, |d2| {
        d2.edit_config("pane_probe_ms = 500", "pane_probe_ms = 100");
        d2.agent_config(
            "Agent-2",
            &tmux.agent_config("Agent-2", ", profile = \"claude\""),
        );
    });
    // The fake agent on desk-2 draws its permission dialog.
    std::fs::write(tmux.flag("Agent-2", "dialog"), "rm -rf dist").unwrap();
    let post = posted(&standin, "rm -rf dist");
    assert!(post.content.starts_with("**Agent-2**"), "{post:?}");
    assert_eq!(press(&standin, &post, "Allow", 6001, 91)["type"], 7);
    // desk-2 gives the dialog its own key, once; the hub's post says so.
    let keys = || -> Vec<Value> {
        std::fs::read_to_string(tmux.record("Agent-2"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r.get("dialog_key").is_some())
            .collect()
    };
    wait_until(LIMIT, || !keys().is_empty());
    edited(&standin, post.id, "key 1 (Yes) sent to pane");
    assert_eq!(keys().len(), 1, "{:?}", keys());
    assert_eq!(keys()[0]["dialog_key"], "1");
    let (decision, _, answered, _) = stored(desk.hub(), &prompt_id(&post));
    assert_eq!(decision.as_deref(), Some("allow"));
    assert!(answered.unwrap().starts_with("key 1 (Yes) sent"));
    standin.assert_no_violations();
}
