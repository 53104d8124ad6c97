//! `acp mcp` driven by a real MCP client no one here wrote: the official
//! Python SDK (`mcp` from `PyPI`, installed by the test script into
//! `target/mcp-venv`), over stdio.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{Root, stdout};

/// The Python that has the `mcp` SDK: `ACP_MCP_PYTHON`, else the test
/// script's virtual environment.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ACP_MCP_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python");
    assert!(
        venv.exists(),
        "the MCP tests need Python's mcp SDK: run scripts/test.sh (it makes target/mcp-venv), or \
         set ACP_MCP_PYTHON"
    );
    venv
}

/// Runs the client against `acp mcp --agent AGENT` with these calls.
pub(crate) fn client(root: &Root, agent: &str, calls: &Value) -> Value {
    let mut child = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/mcp_client.py"
        ))
        .arg(env!("CARGO_BIN_EXE_acp"))
        .arg(root.path())
        .arg(agent)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), calls.to_string().as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the MCP client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout(&out)).unwrap()
}

pub(crate) fn text(result: &Value) -> String {
    result["texts"][0].as_str().unwrap_or_default().to_owned()
}

#[test]
fn an_mcp_client_lists_the_tools_calls_each_and_sees_bad_input_refused() {
    let root = Root::new(2);
    root.fast();
    let asked = {
        let out = root.run(&[
            "send",
            "--to",
            "Agent-1",
            "--from",
            "Agent-2",
            "which port?",
        ]);
        assert!(out.status.success());
        stdout(&out).lines().next().unwrap().to_owned()
    };
    std::fs::create_dir_all(root.path().join("devlogs/Agent-1")).unwrap();
    let calls = json!([
        ["send_message", {"to": "Agent-2", "body": "the build is green", "priority": "urgent"}],
        ["broadcast", {"body": "standup in five"}],
        ["list_inbox", {"unread_only": false}],
        ["read_message", {"id": asked}],
        ["reply", {"id": asked, "body": "port 8080"}],
        ["ack", {"id": asked}],
        ["list_agents", {}],
        ["status", {}],
        ["post_devlog", {"path": "../config/acp.toml"}],
        ["send_message", {"to": "Agent-9", "body": "hello"}],
        ["send_message", {"to": "Agent-2", "body": "  "}],
        ["send_message", {"to": "Agent-2", "body": "x", "priority": "asap"}],
        ["ack", {"id": "not-an-id-at-all-0123456789"}],
    ]);
    let out = client(&root, "Agent-1", &calls);
    assert!(out["instructions"].as_str().unwrap().contains("Agent-1"));

    // The tools, with exact schemas.
    let tools = out["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in [
        "send_message",
        "broadcast",
        "list_inbox",
        "read_message",
        "ack",
        "reply",
        "post_devlog",
        "list_agents",
        "status",
    ] {
        assert!(names.contains(&name), "{name} missing: {names:?}");
    }
    let send_tool = tools.iter().find(|t| t["name"] == "send_message").unwrap();
    let schema = &send_tool["inputSchema"];
    assert_eq!(schema["required"], json!(["to", "body"]), "{schema}");
    assert_eq!(schema["properties"]["body"]["maxLength"], 16384, "{schema}");
    assert_eq!(schema["additionalProperties"], false, "{schema}");
    let priority = serde_json::to_string(schema).unwrap();
    assert!(
        priority.contains("\"normal\"")
            && priority.contains("\"urgent\"")
            && priority.contains("\"critical\""),
        "{schema}"
    );
    // Every schema is a schema a validator accepts.
    for t in tools {
        jsonschema::validator_for(&t["inputSchema"]).unwrap();
    }

    let r = out["results"].as_array().unwrap();
    let sent: Value = serde_json::from_str(&text(&r[0])).unwrap();
    assert!(!r[0]["isError"].as_bool().unwrap(), "{}", r[0]);
    let sent_id = sent["id"].as_str().unwrap();
    // Stored and delivered like any other message (no acp run: the server
    // delivered it itself).
    assert!(root.inbox_ids("Agent-2").contains_key(sent_id));
    let stored = read(&root, sent_id);
    assert_eq!(stored["message"]["from"], "Agent-1");
    assert_eq!(stored["message"]["priority"], "urgent");
    assert!(!r[1]["isError"].as_bool().unwrap(), "{}", r[1]);
    let inbox: Value = serde_json::from_str(&text(&r[2])).unwrap();
    assert!(inbox.to_string().contains("which port?"), "{inbox}");
    assert!(text(&r[3]).contains("which port?"));
    // The reply went to the asking agent's inbox, with reply_to.
    let replied: Value = serde_json::from_str(&text(&r[4])).unwrap();
    let reply_id = replied["id"].as_str().unwrap();
    let file = root
        .inbox_files("Agent-2")
        .into_iter()
        .find(|f| f.contains(reply_id))
        .unwrap();
    let body = std::fs::read_to_string(root.inbox("Agent-2").join(file)).unwrap();
    assert!(
        body.contains(&format!("reply_to: {asked}")) && body.contains("port 8080"),
        "{body}"
    );
    assert!(!r[5]["isError"].as_bool().unwrap(), "{}", r[5]);
    assert_eq!(read(&root, &asked)["deliveries"][0]["acked_by"], "Agent-1");
    assert!(text(&r[6]).contains("Agent-2"));
    assert!(text(&r[7]).contains("queue"));

    // Bad input: tool errors with the CLI's texts, nothing stored.
    let refusal = |i: usize, says: &str| {
        assert!(r[i]["isError"].as_bool().unwrap(), "{}", r[i]);
        assert!(text(&r[i]).contains(says), "{says}: {}", r[i]);
    };
    refusal(8, "outside devlogs/");
    refusal(9, "unknown agent Agent-9");
    refusal(10, "body is empty");
    refusal(11, "unknown variant");
    refusal(12, "not a message id");
}

/// `acp --json inbox read ID`.
fn read(root: &Root, id: &str) -> Value {
    let out = root.run(&["--json", "inbox", "read", id]);
    serde_json::from_str(&stdout(&out)).unwrap()
}
