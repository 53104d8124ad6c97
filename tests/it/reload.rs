//! `acp run` reloads its configuration when the files change (and on
//! SIGHUP), refuses a bad one and keeps the one before, and says so.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Root, Service, status, stderr, stdout, wait_until};

const LIMIT: Duration = Duration::from_secs(30);

/// What `acp status --json` says of the service's configuration.
fn service_config(root: &Root) -> Value {
    status(root)["service_config"].clone()
}

/// Waits until the service has said which config it runs.
fn started(root: &Root) -> Service {
    let service = root.service();
    wait_until(LIMIT, || !service_config(root).is_null());
    service
}

/// The status page's HTML, from the address the service's log names.
fn page(root: &Root) -> String {
    let log = fs::read_to_string(root.path().join("service.log")).unwrap();
    let addr = log
        .split("at http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the log names the page's address")
        .to_owned();
    reqwest::blocking::get(format!("http://{addr}/"))
        .unwrap()
        .text()
        .unwrap()
}

fn reloads(root: &Root) -> u64 {
    service_config(root)["reloads"].as_u64().unwrap_or(0)
}

fn send(root: &Root, to: &str, body: &str) -> String {
    let out = root.run(&["send", "--to", to, body]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().next().unwrap().trim().to_owned()
}

#[test]
fn an_agent_added_to_the_file_is_delivered_to_without_a_restart() {
    let root = Root::new(2);
    root.fast();
    let service = started(&root);
    let pid = service.child.id();
    let path = root.path().join("config/acp.toml");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("\n[[agents]]\nid = \"Agent-3\"\nname = \"Agent-3\"\nrole = \"New\"\n");
    fs::write(&path, text).unwrap();
    wait_until(LIMIT, || reloads(&root) == 1);
    let id = send(&root, "Agent-3", "welcome aboard");
    wait_until(LIMIT, || root.inbox_ids("Agent-3").contains_key(&id));
    // The same process: reloaded, not restarted.
    assert_eq!(status(&root)["service_config"]["pid"], pid);
    let (exit, log) = service.terminate();
    assert!(exit.success(), "{log}");
    assert!(log.contains("reloaded the config"), "{log}");
}

#[test]
fn a_bad_config_is_refused_and_the_running_one_kept() {
    let root = Root::new(2);
    root.fast();
    let service = started(&root);
    let path = root.path().join("config/acp.toml");
    let good = fs::read_to_string(&path).unwrap();
    fs::write(&path, good.replace("[delivery]", "[delivery")).unwrap();
    // Every command says the file is wrong, and that the service keeps
    // the config it had.
    wait_until(LIMIT, || {
        fs::read_to_string(root.path().join("service.log"))
            .unwrap()
            .contains("the new config is refused")
    });
    let out = root.run(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the running acp run keeps the config it loaded before"),
        "{}",
        stderr(&out)
    );
    // Put back, the refusal is gone and messages flow as before.
    fs::write(&path, &good).unwrap();
    wait_until(LIMIT, || service_config(&root)["refused"].is_null());
    assert_eq!(reloads(&root), 0, "the same config: nothing to reload");
    let id = send(&root, "Agent-2", "still here");
    wait_until(LIMIT, || root.inbox_ids("Agent-2").contains_key(&id));

    // Coordinates that do not parse: refused too, said by status and
    // doctor, while deliveries go on.
    let coords = root.path().join("config/coordinates.json");
    fs::write(&coords, "{ \"Agent-1\": [1, 2 }").unwrap();
    wait_until(LIMIT, || !service_config(&root)["refused"].is_null());
    let refused = service_config(&root)["refused"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(refused.contains("coordinates.json"), "{refused}");
    let text = stdout(&root.run(&["status"]));
    assert!(text.contains("REFUSED"), "{text}");
    let doctor = root.run(&["doctor"]);
    assert!(
        stdout(&doctor).contains("refused the files on disk"),
        "{}",
        stdout(&doctor)
    );
    let page = page(&root);
    assert!(
        page.contains("Config refused") && page.contains("coordinates.json"),
        "{page}"
    );
    let id = send(&root, "Agent-1", "coordinates aside");
    wait_until(LIMIT, || root.inbox_ids("Agent-1").contains_key(&id));
    drop(service);
}

#[test]
fn a_new_address_waits_for_a_restart_and_sighup_reloads_nothing_when_nothing_changed() {
    let root = Root::new(1);
    let service = started(&root);
    let pid = service.child.id().to_string();
    // SIGHUP with the files as they were: said, and the service lives on.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_until(LIMIT, || {
        fs::read_to_string(root.path().join("service.log"))
            .unwrap()
            .contains("SIGHUP: the config files have not changed")
    });
    root.edit_config("bind = \"127.0.0.1:0\"", "bind = \"127.0.0.1:1\"");
    wait_until(LIMIT, || reloads(&root) == 1);
    let config = service_config(&root);
    let needed = config["restart_needed"].to_string();
    assert!(needed.contains("[http] bind"), "{config}");
    let text = stdout(&root.run(&["status"]));
    assert!(text.contains("restart needed for: [http] bind"), "{text}");
    let doctor = stdout(&root.run(&["doctor"]));
    assert!(doctor.contains("waits for a restart"), "{doctor}");
    // The page is still served where it was bound, and says it.
    let page = page(&root);
    assert!(
        page.contains("Restart needed") && page.contains("127.0.0.1:1"),
        "{page}"
    );
    let (exit, log) = service.terminate();
    assert!(exit.success(), "{log}");
}

#[test]
fn the_bot_comes_back_on_the_new_config_after_a_reload() {
    use crate::discord::{OPERATOR, command, start};
    use crate::standin::StandIn;
    let standin = StandIn::start();
    let root = Root::new(2);
    root.fast();
    let _bot = start(&root, &standin);
    wait_until(LIMIT, || !service_config(&root).is_null());
    let from = standin.requests().len();
    let path = root.path().join("config/acp.toml");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("\n[[agents]]\nid = \"Agent-3\"\nname = \"Agent-3\"\nrole = \"New\"\n");
    fs::write(&path, text).unwrap();
    wait_until(LIMIT, || reloads(&root) == 1);
    // The bot of the new core registers its commands again, then takes
    // a message for the agent the file just added.
    standin.wait_for(from, LIMIT, |r| {
        r.method == "PUT" && r.path.ends_with("/commands")
    });
    let reply = command(
        &standin,
        400_000_000_000_000_901,
        "message",
        &serde_json::json!([{"name": "agent", "type": 3, "value": "Agent-3"}, {"name": "text", "type": 3, "value": "from the phone"}]),
        &[OPERATOR],
    );
    let accepted = reply["data"]["content"].as_str().unwrap_or_default();
    assert!(accepted.contains("Accepted"), "{reply}");
    wait_until(LIMIT, || !root.inbox_files("Agent-3").is_empty());
    standin.assert_no_violations();
}
