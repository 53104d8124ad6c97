//! The process table, read once from `/proc`: who runs under a pane's
//! first process, and which of them is the pane's foreground job (the one
//! that reads what is typed or pasted into the pane).

use std::collections::{HashMap, VecDeque};

use super::programs::Facts;

/// How deep under a pane's first process, and how many processes at
/// most, the search goes.
const MAX_DEPTH: usize = 6;
const MAX_VISITED: usize = 512;

#[derive(Debug, Clone)]
struct Proc {
    pgrp: i32,
    /// The foreground process group of its terminal.
    tpgid: i32,
}

/// The processes of this machine, as `/proc` showed them once.
#[derive(Debug, Default)]
pub(super) struct Table {
    procs: HashMap<i32, Proc>,
    children: HashMap<i32, Vec<i32>>,
}

impl Table {
    /// Reads `/proc` (nothing where there is none).
    pub(super) fn read() -> Self {
        let mut table = Self::default();
        #[cfg(target_os = "linux")]
        if let Ok(all) = procfs::process::all_processes() {
            // A process that ends meanwhile is left out.
            for stat in all.filter_map(|p| p.ok()?.stat().ok()) {
                table.children.entry(stat.ppid).or_default().push(stat.pid);
                table.procs.insert(
                    stat.pid,
                    Proc {
                        pgrp: stat.pgrp,
                        tpgid: stat.tpgid,
                    },
                );
            }
        }
        for kids in table.children.values_mut() {
            kids.sort_unstable();
        }
        table
    }

    /// The processes of the pane's foreground job at or under `root` (its
    /// first process), nearest first.
    pub(super) fn foreground_under(&self, root: u32) -> Vec<u32> {
        let Ok(root) = i32::try_from(root) else {
            return Vec::new();
        };
        let Some(first) = self.procs.get(&root) else {
            return Vec::new();
        };
        let job = first.tpgid;
        let mut out = Vec::new();
        let mut queue = VecDeque::from([(root, 0)]);
        let mut visited = 0;
        while let Some((pid, depth)) = queue.pop_front() {
            visited += 1;
            if visited > MAX_VISITED {
                break;
            }
            if let Some(p) = self.procs.get(&pid)
                && (job <= 0 || p.pgrp == job)
                && let Ok(pid) = u32::try_from(pid)
            {
                out.push(pid);
            }
            if depth < MAX_DEPTH {
                for kid in self.children.get(&pid).into_iter().flatten() {
                    queue.push_back((*kid, depth + 1));
                }
            }
        }
        out
    }
}

/// What a process looks like, if it is still there.
pub(super) fn facts(pid: u32) -> Option<Facts> {
    #[cfg(target_os = "linux")]
    {
        let p = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
        let comm = p.stat().ok()?.comm;
        Some(Facts {
            comm,
            argv: p.cmdline().unwrap_or_default(),
            exe: p.exe().ok().map(|e| e.display().to_string()),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_child_in_the_foreground_is_found_under_its_parent() {
        // `sh -c 'sleep 30; :'` keeps sh as the parent (no exec): the
        // sleep is its child, in its process group.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :"])
            .spawn()
            .unwrap();
        let sh = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            let under = Table::read().foreground_under(sh);
            let sleep = under
                .iter()
                .copied()
                .find(|pid| facts(*pid).is_some_and(|f| f.comm == "sleep"));
            if sleep.is_some() || std::time::Instant::now() > deadline {
                break (under, sleep);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let _ = child.kill();
        let _ = child.wait();
        let (under, sleep) = found;
        assert_eq!(under.first(), Some(&sh), "the first process first");
        let sleep = sleep.expect("sleep under sh");
        let f = facts(sleep).unwrap();
        assert_eq!(f.argv, ["sleep", "30"]);
        assert!(f.exe.is_some_and(|e| e.ends_with("sleep")));
    }
}
