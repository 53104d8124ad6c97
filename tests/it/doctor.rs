//! `acp doctor` tells the truth: each failure's fix is the one for its
//! cause, found with the real parts: a real nats-server (wrong password,
//! no JetStream, a forbidden subject, TLS), and the loopback Discord
//! stand-in (a refused token, the bot not in the server, a channel whose
//! overwrite denies it Send Messages, no operator role). Exit codes: 1 when
//! a check failed, 0 with only warnings.

use std::fs;

use serde_json::{Value, json};

use crate::cluster::{Nats, free_port};
use crate::standin::guild::{
    BOT_ROLE_ID, DEVLOG_CHANNEL_ID, OPERATOR_ROLE_ID, SEND_MESSAGES, text_channel,
};
use crate::standin::{APP_ID, CHANNEL_ID, StandIn};
use crate::support::{Root, stderr};

/// `acp doctor --json`: its exit code and report.
fn doctor(root: &Root) -> (i32, Value) {
    let out = root.run(&["doctor", "--json"]);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stderr(&out)));
    (out.status.code().unwrap(), report)
}

/// One check of a report (which must be there).
fn check(report: &Value, name: &str) -> Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {report:#}"))
        .clone()
}

fn text(check: &Value, key: &str) -> String {
    check[key].as_str().unwrap_or("").to_owned()
}

/// A root on the hub desk-1 of a swarm, with this `.env`.
fn swarm_root(env: &str) -> Root {
    let root = Root::new(1);
    let path = root.path().join("config/acp.toml");
    let mut config = fs::read_to_string(&path).unwrap();
    config.push_str("\n[cluster]\nhub = \"desk-1\"\n");
    fs::write(&path, config).unwrap();
    write_env(&root, env);
    root
}

/// Writes `.env` as a careful user keeps it (readable by its owner only).
fn write_env(root: &Root, text: &str) {
    let env = root.path().join(".env");
    fs::write(&env, text).unwrap();
    fs::set_permissions(&env, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

#[test]
fn each_nats_connection_failure_gets_the_fix_for_its_cause() {
    // Nothing listens: start the server (with JetStream), or fix the URL.
    let port = free_port();
    let root = swarm_root(&format!("ACP_NATS_URL=nats://127.0.0.1:{port}\n"));
    let (code, report) = doctor(&root);
    assert_eq!(code, 1, "{report:#}");
    let nats = check(&report, "nats");
    assert_eq!(nats["level"], "fail");
    assert!(
        text(&nats, "detail").contains("connection refused"),
        "{nats}"
    );
    assert!(
        text(&nats, "fix").starts_with("start nats-server there"),
        "{nats}"
    );

    let server = Nats::start(Some(&crate::cluster::auth_conf()));
    let url = server.url();
    // A wrong password: the credentials, never "-js".
    fs::write(
        root.path().join(".env"),
        format!("ACP_NATS_URL={url}\nACP_NATS_USER=hub\nACP_NATS_PASSWORD=not-the-password\n"),
    )
    .unwrap();
    let out = root.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!shown.contains("not-the-password"), "{shown}");
    let (_, report) = doctor(&root);
    let nats = check(&report, "nats");
    assert_eq!(nats["level"], "fail");
    assert!(
        text(&nats, "detail").contains("refused user hub and a password: authorization violation"),
        "{nats}"
    );
    let fix = text(&nats, "fix");
    assert!(
        fix.contains("ACP_NATS_USER and ACP_NATS_PASSWORD") && !fix.contains("-js"),
        "{fix}"
    );
    // No credentials at all, where the server wants them.
    fs::write(root.path().join(".env"), format!("ACP_NATS_URL={url}\n")).unwrap();
    let nats = check(&doctor(&root).1, "nats");
    assert!(
        text(&nats, "detail").contains("without credentials")
            && text(&nats, "fix").starts_with("the server wants credentials"),
        "{nats}"
    );
    // TLS asked of a server that speaks none.
    fs::write(
        root.path().join(".env"),
        format!(
            "ACP_NATS_URL={}\nACP_NATS_USER=hub\nACP_NATS_PASSWORD=hub-secret\n",
            url.replace("nats://", "tls://")
        ),
    )
    .unwrap();
    let nats = check(&doctor(&root).1, "nats");
    assert!(text(&nats, "detail").contains("TLS"), "{nats}");
    assert!(
        text(&nats, "fix").starts_with("the server speaks no TLS"),
        "{nats}"
    );
    // The right ones: connected, and the streams are the hub's to make.
    fs::write(
        root.path().join(".env"),
        format!("ACP_NATS_URL={url}\nACP_NATS_USER=hub\nACP_NATS_PASSWORD=hub-secret\n"),
    )
    .unwrap();
    let (_, report) = doctor(&root);
    assert_eq!(check(&report, "nats")["level"], "ok", "{report:#}");
    let streams = check(&report, "streams");
    assert!(
        text(&streams, "fix").starts_with("start the hub's acp run first"),
        "{streams}"
    );
}

#[test]
fn a_server_or_an_account_without_jetstream_says_how_to_enable_it() {
    let server = Nats::without_jetstream(None);
    let root = swarm_root(&format!("ACP_NATS_URL={}\n", server.url()));
    let (code, report) = doctor(&root);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(check(&report, "nats")["level"], "ok", "{report:#}");
    let streams = check(&report, "streams");
    assert_eq!(streams["level"], "fail");
    assert!(
        text(&streams, "detail").contains("runs without JetStream"),
        "{streams}"
    );
    assert!(
        text(&streams, "fix").contains("nats-server -js"),
        "{streams}"
    );

    // JetStream on the server, but not for this user's account.
    let server = Nats::start(Some(
        "accounts {\n  SWARM: { jetstream: enabled, users: [ { user: \"hub\", password: \"hub-secret\" } ] }\n  \
         OTHER: { users: [ { user: \"plain\", password: \"plain-secret\" } ] }\n}\n",
    ));
    fs::write(
        root.path().join(".env"),
        format!(
            "ACP_NATS_URL={}\nACP_NATS_USER=plain\nACP_NATS_PASSWORD=plain-secret\n",
            server.url()
        ),
    )
    .unwrap();
    let streams = check(&doctor(&root).1, "streams");
    assert!(
        text(&streams, "detail").contains("not for the account"),
        "{streams}"
    );
    let fix = text(&streams, "fix");
    assert!(
        fix.contains("jetstream: enabled") && !fix.contains("-js"),
        "{fix}"
    );
}

#[test]
fn a_hub_user_without_the_jetstream_permissions_is_told_which_it_needs() {
    // The hub's user may use its subjects but not JetStream's API.
    let server = Nats::start(Some(
        "authorization { users = [ { user: \"hub\", password: \"hub-secret\", permissions: { \
         publish: { allow: [\"acp.acp.>\", \"_INBOX_desk-1.>\"] }, \
         subscribe: { allow: [\"acp.acp.>\", \"_INBOX_desk-1.>\"] } } } ] }\n",
    ));
    let root = swarm_root(&format!(
        "ACP_NATS_URL={}\nACP_NATS_USER=hub\nACP_NATS_PASSWORD=hub-secret\n",
        server.url()
    ));
    let (code, report) = doctor(&root);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(check(&report, "nats")["level"], "ok", "{report:#}");
    let streams = check(&report, "streams");
    assert!(
        text(&streams, "detail").contains("Permissions Violation"),
        "{streams}"
    );
    let fix = text(&streams, "fix");
    assert!(
        fix.contains("the hub's permissions") && fix.contains("$JS.>") && !fix.contains("-js"),
        "{fix}"
    );
}

#[test]
fn an_untrusted_nats_certificate_says_to_trust_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes the test's certificate");
    assert!(made.status.success(), "{}", stderr(&made));
    let server = Nats::start(Some(&format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
        cert.display(),
        key.display()
    )));
    let root = swarm_root(&format!("ACP_NATS_URL={}\n", server.url()));
    let nats = check(&doctor(&root).1, "nats");
    assert_eq!(nats["level"], "fail");
    assert!(text(&nats, "detail").contains("certificate"), "{nats}");
    assert!(
        text(&nats, "fix").starts_with("trust the server's certificate: set ACP_NATS_TLS_CA"),
        "{nats}"
    );
}

/// A root whose bot talks to the stand-in with `token`: the server and
/// roles of the stand-in, and its channel as the swarm channel.
fn discord_root(standin: &StandIn, token: &str) -> Root {
    let root = Root::new(1);
    root.edit_config(
        "api_base = \"\"",
        &format!(
            "api_base = \"{}\"\nguild_id = {}",
            standin.base,
            crate::standin::GUILD_ID
        ),
    )
    .edit_config(
        "operator_roles = []",
        &format!("operator_roles = [{OPERATOR_ROLE_ID}]"),
    )
    .edit_config(
        "swarm_channel = 0",
        &format!("swarm_channel = {CHANNEL_ID}"),
    );
    write_env(&root, &format!("DISCORD_TOKEN={token}\n"));
    root
}

#[test]
fn a_good_setup_is_all_ok() {
    let standin = StandIn::start();
    let root = discord_root(&standin, "standin-token");
    root.edit_config("agent_threads = false", "agent_threads = true")
        .edit_config(
            "devlog_channel = 0",
            &format!("devlog_channel = {DEVLOG_CHANNEL_ID}"),
        );
    let out = root.run(&["backup", "create", "--kind", "full"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, report) = doctor(&root);
    assert_eq!(code, 0, "{report:#}");
    // Free space is the machine's, not the setup's.
    let not_ok: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["level"] != "ok" && !text(c, "check").starts_with("disk"))
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    for (name, says) in [
        ("discord token", "the bot is acp (100000000000000001)"),
        (
            "discord server",
            "the bot is in acp test (200000000000000001)",
        ),
        ("swarm channel", "make agent threads and post in them"),
        ("devlog channel", "#devlogs"),
        ("operators", "acp operator (discord.operator_roles)"),
    ] {
        let found = check(&report, name);
        assert!(text(&found, "detail").contains(says), "{found}");
    }
    standin.assert_no_violations();
}

#[test]
fn a_refused_token_says_where_to_get_a_new_one_and_asks_nothing_more() {
    let standin = StandIn::start();
    let root = discord_root(&standin, "rejected-token");
    let out = root.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("rejected-token"),
        "the token is shown"
    );
    let (code, report) = doctor(&root);
    assert_eq!(code, 1);
    let token = check(&report, "discord token");
    assert_eq!(token["level"], "fail");
    assert!(text(&token, "detail").contains("401"), "{token}");
    assert!(
        text(&token, "fix").contains("https://discord.com/developers/applications")
            && text(&token, "fix").contains("Reset Token"),
        "{token}"
    );
    // With the token refused, nothing else is asked of Discord.
    let asked: Vec<String> = standin.requests().iter().map(|r| r.path.clone()).collect();
    assert!(asked.iter().all(|p| p == "/users/@me"), "{asked:?}");
    standin.assert_no_violations();
}

#[test]
fn a_channel_that_denies_the_bot_send_messages_is_named_with_the_permission() {
    let standin = StandIn::start();
    // The swarm channel's overwrite takes Send Messages from the bot's role.
    standin.with_guild(|g| {
        g.channels.insert(
            CHANNEL_ID.to_owned(),
            text_channel(
                CHANNEL_ID,
                "swarm",
                &json!([{"id": BOT_ROLE_ID, "type": 0, "allow": "0", "deny": SEND_MESSAGES.to_string()}]),
            ),
        );
    });
    let root = discord_root(&standin, "standin-token");
    let (code, report) = doctor(&root);
    assert_eq!(code, 1, "{report:#}");
    let swarm = check(&report, "swarm channel");
    assert_eq!(swarm["level"], "fail");
    let detail = text(&swarm, "detail");
    assert!(
        detail.contains("#swarm (500000000000000001)")
            && detail.contains("lacks Send Messages (the channel's permission overwrites deny it)"),
        "{detail}"
    );
    assert!(
        !detail.contains("View Channel") && !detail.contains("Attach Files"),
        "only what is missing: {detail}"
    );
    assert!(
        text(&swarm, "fix").starts_with(
            "Edit Channel #swarm → Permissions: allow Send Messages for the bot's role acp"
        ),
        "{swarm}"
    );
    standin.assert_no_violations();
}

#[test]
fn a_bot_not_in_the_server_gets_its_invite_link() {
    let standin = StandIn::start();
    standin.with_guild(|g| g.joined = false);
    let root = discord_root(&standin, "standin-token");
    let (code, report) = doctor(&root);
    assert_eq!(code, 1, "{report:#}");
    let server = check(&report, "discord server");
    assert_eq!(server["level"], "fail");
    assert!(
        text(&server, "detail").contains("is not in server 200000000000000001"),
        "{server}"
    );
    assert!(
        text(&server, "fix").contains(&format!(
            "https://discord.com/oauth2/authorize?client_id={APP_ID}&scope=bot+applications.commands&permissions=309237763072"
        )),
        "{server}"
    );
    // Nothing is said of its channels or roles there, which it cannot see.
    let operators = check(&report, "operators");
    assert!(
        text(&operators, "detail").contains("not checked: the bot is not in the server"),
        "{operators}"
    );
    assert!(!report.to_string().contains("swarm channel"), "{report:#}");
    standin.assert_no_violations();
}

#[test]
fn nobody_at_the_operator_level_is_a_warning() {
    let standin = StandIn::start();
    let root = discord_root(&standin, "standin-token");
    root.edit_config(
        &format!("operator_roles = [{OPERATOR_ROLE_ID}]"),
        "operator_roles = []",
    );
    let (code, report) = doctor(&root);
    let operators = check(&report, "operators");
    assert_eq!(operators["level"], "warn", "{report:#}");
    assert!(
        text(&operators, "detail").starts_with("nobody holds the operator level"),
        "{operators}"
    );
    assert!(
        text(&operators, "fix").contains("discord.operator_roles"),
        "{operators}"
    );
    // A warning alone does not fail the doctor.
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["level"] == "fail")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(code, 0);

    // A role id the server does not have, and the bot's own role, which no
    // person can be given: still nobody.
    root.edit_config(
        "operator_roles = []",
        &format!("operator_roles = [700000000000000077, {BOT_ROLE_ID}]"),
    );
    let operators = check(&doctor(&root).1, "operators");
    assert_eq!(operators["level"], "warn");
    let detail = text(&operators, "detail");
    assert!(
        detail.starts_with("nobody holds the operator level")
            && detail
                .contains("700000000000000077 (discord.operator_roles) is not a role of acp test")
            && detail.contains("belongs to a bot or an integration"),
        "{detail}"
    );
    standin.assert_no_violations();
}

#[test]
fn an_unreachable_api_base_is_named() {
    let port = free_port();
    let root = Root::new(1);
    let base = format!("http://127.0.0.1:{port}");
    root.edit_config("api_base = \"\"", &format!("api_base = \"{base}\""));
    fs::write(root.path().join(".env"), "DISCORD_TOKEN=standin-token\n").unwrap();
    let (code, report) = doctor(&root);
    assert_eq!(code, 1, "{report:#}");
    let token = check(&report, "discord token");
    assert!(
        text(&token, "detail").starts_with(&format!("cannot reach {base}")),
        "{token}"
    );
    assert!(text(&token, "fix").contains(&base), "{token}");
}

#[test]
fn a_node_needs_no_discord_token() {
    let root = swarm_root(&format!(
        "ACP_NODE=desk-2\nACP_NATS_URL=nats://127.0.0.1:{}\n",
        free_port()
    ));
    let (_, report) = doctor(&root);
    let discord = check(&report, "discord");
    assert_eq!(discord["level"], "ok", "{report:#}");
    assert!(
        text(&discord, "detail").contains("the hub (desk-1) runs the Discord bot"),
        "{discord}"
    );
    let about_the_token: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["level"] != "ok" && c.to_string().contains("DISCORD_TOKEN"))
        .collect();
    assert!(about_the_token.is_empty(), "{about_the_token:#?}");
}

#[test]
fn a_permission_no_role_grants_is_named_in_the_channels_own_server() {
    let standin = StandIn::start();
    // The bot's role grants only View Channel and Send Messages, and
    // @everyone no more than that.
    standin.with_guild(|g| {
        let bot_role = g.roles.iter_mut().find(|r| r["id"] == BOT_ROLE_ID).unwrap();
        bot_role["permissions"] = json!("3072");
    });
    let root = discord_root(&standin, "standin-token");
    // No guild_id: the channel is checked in the server it is in.
    root.edit_config("guild_id = 200000000000000001", "")
        .edit_config("agent_threads = false", "agent_threads = true");
    let (code, report) = doctor(&root);
    assert_eq!(code, 1, "{report:#}");
    let swarm = check(&report, "swarm channel");
    assert_eq!(swarm["level"], "fail");
    assert!(
        text(&swarm, "detail").ends_with(
            "lacks Attach Files, Create Public Threads, Send Messages in Threads (none of its \
             roles grants them): posts there fail"
        ),
        "{swarm}"
    );
    assert!(
        text(&swarm, "fix").starts_with("Server Settings → Roles → acp: allow Attach Files"),
        "{swarm}"
    );
    standin.assert_no_violations();
}

#[test]
fn store_coordinates_and_config_findings_each_get_their_own_fix() {
    let root = Root::new(2);
    // A store deleted in use leaves its write-ahead log: not "not created
    // yet", but a restore (an empty store would lose the log).
    fs::create_dir_all(root.path().join("data")).unwrap();
    fs::write(root.path().join("data/acp.db-wal"), b"log").unwrap();
    let (code, report) = doctor(&root);
    assert_eq!(code, 1, "{report:#}");
    let store = check(&report, "store");
    assert!(
        text(&store, "detail").contains("write-ahead log is still there"),
        "{store}"
    );
    assert!(
        text(&store, "fix").contains("acp backup restore latest --in-place"),
        "{store}"
    );
    fs::remove_file(root.path().join("data/acp.db-wal")).unwrap();

    // No coordinates file: nothing to fix while no agent uses gui ...
    fs::remove_file(root.path().join("config/coordinates.json")).unwrap();
    let coords = check(&doctor(&root).1, "coordinates");
    assert_eq!(coords["level"], "ok", "{coords}");
    // ... and the capture, for the agent that does.
    root.agent_config("Agent-2", "delivery = [\"gui\", \"inbox\"]");
    let coords = check(&doctor(&root).1, "coordinates");
    assert_eq!(coords["level"], "warn", "{coords}");
    assert!(
        text(&coords, "fix").contains("acp coords capture Agent-2 --save"),
        "{coords}"
    );
    // A file that is not JSON: correct it (or capture again), not "only
    // needed for gui".
    fs::write(root.path().join("config/coordinates.json"), "{ nope").unwrap();
    let coords = check(&doctor(&root).1, "coordinates");
    assert!(
        text(&coords, "fix").starts_with("correct the file"),
        "{coords}"
    );

    // A TOML error is not a "key named above".
    fs::write(root.path().join("config/acp.toml"), "[discord\n").unwrap();
    let (code, report) = doctor(&root);
    assert_eq!(code, 1);
    let config = check(&report, "config");
    assert!(
        text(&config, "fix").starts_with("correct the TOML at the line and column named above"),
        "{config}"
    );
}
