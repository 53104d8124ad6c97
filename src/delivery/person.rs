//! Person delivery: an agent's answer into the inbox of the person who
//! wrote to it. The store holds the record (`acp inbox list`, the API,
//! the page read it there); the method also writes the message as a
//! markdown file under `data/people/NAME/inbox/`, atomically and at most
//! once per message id, as the inbox method does for agents, so that a
//! person can read it with any editor and a full disk is retried like
//! any delivery.

use std::path::PathBuf;

use crate::model::{DeliveryError, MethodName, UnifiedMessage};

use super::inbox::{Confined, Written, file_name, render, write_once};
use super::{DeliveryMethod, Target};

/// Writes answers into people's inboxes under one folder
/// (`data/people/`).
#[derive(Debug, Clone)]
pub struct PersonMethod {
    people: PathBuf,
}

impl PersonMethod {
    /// The method, writing under `people` (`data/people/`).
    #[must_use]
    pub fn new(people: PathBuf) -> Self {
        Self { people }
    }
}

impl DeliveryMethod for PersonMethod {
    fn name(&self) -> MethodName {
        MethodName::Person
    }

    fn deliver(&self, to: Target<'_>, message: &UnifiedMessage) -> Result<String, DeliveryError> {
        let Target::Person(name) = to else {
            return Err(DeliveryError::unavailable(
                "person delivers to people's inboxes, not to agents or Discord",
            ));
        };
        let home = self.people.join(name.as_str());
        let dir = home.join("inbox");
        // Opened without following links below data/people/: what is
        // written lands in this person's folder or nowhere.
        let inbox = Confined::open(&home, &["inbox"])?;
        let written = write_once(
            &inbox.path(),
            &file_name(message),
            render(message).as_bytes(),
        )
        .map(|w| inbox.said(w))
        .map_err(|e| {
            DeliveryError::transient(format!(
                "cannot write to {name}'s inbox {}: {e} (check that the directory is \
                     writable and the disk has room)",
                dir.display()
            ))
            .or_exhausted(&e)
        })?;
        Ok(match written {
            Written::New(path) | Written::Already(path) => path.display().to_string(),
            Written::Beside { path, kept } => format!(
                "{} ({} was already there with other content: kept, untouched)",
                path.display(),
                kept.display()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Draft, Kind, PersonName, Priority, Recipient};

    #[test]
    fn an_answer_lands_once_in_the_persons_folder_and_a_link_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let people = tmp.path().join("data/people");
        let alice: PersonName = "alice".parse().unwrap();
        let message = Draft {
            from: "Agent-1".into(),
            to: Recipient::Person(alice.clone()),
            kind: Kind::Report,
            priority: Priority::Normal,
            body: "the build is green".into(),
            tags: vec![],
            reply_to: None,
        }
        .build(1024)
        .unwrap();
        let method = PersonMethod::new(people.clone());
        let detail = method.deliver(Target::Person(&alice), &message).unwrap();
        assert!(detail.starts_with(&people.join("alice/inbox").display().to_string()));
        let text = std::fs::read_to_string(&detail).unwrap();
        assert!(text.contains("\nto: person:alice\n") && text.contains("the build is green"));
        // Again (a retry after a crash): the same file, no second one.
        assert_eq!(
            method.deliver(Target::Person(&alice), &message).unwrap(),
            detail
        );
        assert_eq!(
            std::fs::read_dir(people.join("alice/inbox"))
                .unwrap()
                .count(),
            1
        );
        // A folder swapped for a link is not written through.
        let bob: PersonName = "bob".parse().unwrap();
        std::os::unix::fs::symlink(tmp.path(), people.join("bob")).unwrap();
        let err = method.deliver(Target::Person(&bob), &message).unwrap_err();
        assert_eq!(err.kind, crate::model::FailureKind::Permanent, "{err}");
    }
}
