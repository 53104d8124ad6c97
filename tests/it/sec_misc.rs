// Over 400 lines: one story per finding of the security review (issue 20), each an attack
// replayed against real parts.

//! Findings 4, 8, 9, 14 and 16 of the security review, each reproduced as
//! the attack was described, against the real binary, the real bot and the
//! loopback stand-in Discord, the real HTTP door, and the official Python
//! MCP client.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{Root, stderr, stdout};

/// The permission bits of a path, in octal as `ls -l` users read them.
fn mode(path: &Path) -> String {
    format!(
        "{:o}",
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    )
}

#[test]
fn a_restored_root_is_as_private_as_a_new_one() {
    let root = Root::new(1);
    let out = root.run(&["send", "--to", "Agent-1", "kept through the restore"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A root made by an older acp, or opened up since: the store and its
    // directory readable by everyone on the machine.
    let data = root.path().join("data");
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(data.join("acp.db"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(
        root.path().join("config"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = root.run(&["backup", "create", "--kind", "full"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Into an empty directory.
    let restored = Root {
        dir: tempfile::tempdir().unwrap(),
    };
    let dest = restored.path();
    let out = root.run(&[
        "backup",
        "restore",
        "latest",
        "--to",
        dest.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(mode(&dest.join("data")), "700");
    assert_eq!(mode(&dest.join("data/acp.db")), "600");
    assert_eq!(mode(&dest.join("config")), "700");
    assert_eq!(mode(&dest.join("agent_workspaces/Agent-1/inbox")), "700");
    // Nothing lost: the restored store holds the message.
    let out = restored.run(&["--json", "inbox", "list", "--agent", "Agent-1"]);
    assert!(
        stdout(&out).contains("kept through the restore"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );

    // In place: the live store and its directory come back private too.
    let out = root.run(&["backup", "restore", "latest", "--in-place"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(mode(&data), "700");
    assert_eq!(mode(&data.join("acp.db")), "600");
    assert_eq!(mode(&root.path().join("config")), "700");
}
