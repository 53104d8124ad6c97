//! The library pipeline: ordering, fallback, resumption, group commit.

use std::sync::Arc;

use acp::app::{App, SendRequest};
use acp::delivery::Methods;
use acp::delivery::lease::Lease;
use acp::events::Event;
use acp::model::Via;
use acp::model::{DeliveryState, Kind, Priority, Recipient};
use acp::store::now_ms;
use tokio_util::sync::CancellationToken;

use crate::support::Root;

fn request(to: &str, priority: Priority, body: &str) -> SendRequest {
    SendRequest {
        draft: acp::model::Draft {
            from: "tester".into(),
            to: Recipient::Agent(to.parse().unwrap()),
            kind: Kind::Human,
            priority,
            body: body.into(),
            tags: vec![],
            reply_to: None,
        },
        via: Via::Auto,
    }
}

#[tokio::test]
async fn deliveries_go_critical_then_urgent_then_normal_oldest_first() {
    let root = Root::new(1);
    let app = App::open(root.config()).unwrap();
    let plan = [
        (Priority::Normal, "n1"),
        (Priority::Critical, "c1"),
        (Priority::Urgent, "u1"),
        (Priority::Normal, "n2"),
        (Priority::Critical, "c2"),
    ];
    let mut bodies = std::collections::HashMap::new();
    for (p, body) in plan {
        let m = app.send(request("Agent-1", p, body)).await.unwrap();
        bodies.insert(m.id, body);
    }
    let mut events = app.events().subscribe();
    let dispatcher = app.dispatcher(Methods::standard()).unwrap();
    let stats = dispatcher.pump(None, &CancellationToken::new()).unwrap();
    assert_eq!(stats.delivered, 5);
    let mut order = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::Delivered { message_id, .. } = e {
            order.push(bodies[&message_id]);
        }
    }
    assert_eq!(order, ["c1", "c2", "u1", "n1", "n2"]);
    // The inbox files sort by time, as `ls` shows them.
    let files = root.inbox_files("Agent-1");
    assert_eq!(files.len(), 5);
}

#[tokio::test]
async fn a_method_missing_here_falls_back_to_the_inbox_and_says_why() {
    let root = Root::new(2);
    root.edit_config("order = [\"inbox\"]", "order = [\"gui\", \"inbox\"]");
    let app = App::open(root.config()).unwrap();
    let m = app
        .send(request("Agent-2", Priority::Normal, "hello"))
        .await
        .unwrap();
    app.dispatcher(Methods::standard())
        .unwrap()
        .pump(None, &CancellationToken::new())
        .unwrap();
    let (_, deliveries) = app.read(m.id).await.unwrap();
    assert_eq!(deliveries[0].state, DeliveryState::Delivered);
    assert_eq!(deliveries[0].method, Some(acp::model::MethodName::Inbox));
    assert_eq!(
        deliveries[0].summary(),
        "delivered by inbox after gui failed: gui delivery is not available in this acp process"
    );
    // `--via gui` means that method only: no silent fallback.
    let mut only_gui = request("Agent-1", Priority::Normal, "gui or nothing");
    only_gui.via = Via::Only(acp::model::MethodName::Gui);
    let m = app.send(only_gui).await.unwrap();
    app.dispatcher(Methods::standard())
        .unwrap()
        .pump(None, &CancellationToken::new())
        .unwrap();
    let (_, deliveries) = app.read(m.id).await.unwrap();
    assert_eq!(deliveries[0].state, DeliveryState::Failed, "{deliveries:?}");
    assert!(root.inbox_files("Agent-1").is_empty());
}

#[tokio::test]
async fn a_dispatcher_that_dies_after_writing_the_file_is_resumed_without_a_duplicate() {
    let root = Root::new(1);
    let app = App::open(root.config()).unwrap();
    let m = app
        .send(request("Agent-1", Priority::Urgent, "exactly once"))
        .await
        .unwrap();
    // A dispatcher claims the delivery and writes the file, then dies before
    // recording the outcome (its lease lock is released, as at SIGKILL).
    let lease_dir = root.path().join("data/dispatchers");
    let dead = Lease::acquire(&lease_dir).unwrap();
    let store = acp::store::Store::open(&root.path().join("data/acp.db")).unwrap();
    let claimed = store
        .claim(dead.owner(), now_ms(), 10, None, false)
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let agent = app
        .agents()
        .get(claimed[0].to.agent().unwrap())
        .unwrap()
        .clone();
    acp::delivery::DeliveryMethod::deliver(
        &acp::delivery::inbox::InboxMethod,
        acp::delivery::Target::Agent(&agent),
        &claimed[0].message,
    )
    .unwrap();
    let (_, d) = app.read(m.id).await.unwrap();
    assert_eq!(d[0].state, DeliveryState::Delivering);

    // While the owner lives, nobody else takes its delivery.
    let other = app.dispatcher(Methods::standard()).unwrap();
    assert_eq!(other.reclaim().unwrap(), 0);
    drop(dead);
    assert_eq!(other.reclaim().unwrap(), 1);
    let stats = other.pump(None, &CancellationToken::new()).unwrap();
    assert_eq!(stats.delivered, 1);
    assert_eq!(root.inbox_ids("Agent-1").get(&m.id.to_string()), Some(&1));
    assert_eq!(root.inbox_files("Agent-1").len(), 1);
    let (_, d) = app.read(m.id).await.unwrap();
    assert_eq!(d[0].state, DeliveryState::Delivered);
}

#[tokio::test]
async fn concurrent_senders_are_group_committed_and_all_stored() {
    let root = Root::new(8);
    let app = Arc::new(App::open(root.config()).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let app = Arc::clone(&app);
        tasks.spawn(async move {
            let to = format!("Agent-{}", i % 8 + 1);
            app.send(request(&to, Priority::Normal, &format!("message {i}")))
                .await
                .unwrap()
                .id
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 400);
    let status = app.status().await.unwrap();
    assert_eq!(
        status.queue[&DeliveryState::Queued].values().sum::<u64>(),
        400
    );
    // A second process opening the same file sees every one of them.
    let other = App::open(root.config()).unwrap();
    assert_eq!(
        other.status().await.unwrap().queue[&DeliveryState::Queued]
            .values()
            .sum::<u64>(),
        400
    );
}

#[tokio::test]
async fn shutdown_puts_unstarted_deliveries_back_in_the_queue() {
    let root = Root::new(1);
    let app = App::open(root.config()).unwrap();
    for i in 0..3 {
        app.send(request("Agent-1", Priority::Normal, &format!("m{i}")))
            .await
            .unwrap();
    }
    let cancel = CancellationToken::new();
    cancel.cancel();
    let stats = app
        .dispatcher(Methods::standard())
        .unwrap()
        .pump(None, &cancel)
        .unwrap();
    assert_eq!((stats.claimed, stats.released, stats.delivered), (3, 3, 0));
    let report = app.status().await.unwrap();
    assert_eq!(
        report.queue[&DeliveryState::Queued].values().sum::<u64>(),
        3
    );
    assert_eq!(
        report.queue[&DeliveryState::Delivering]
            .values()
            .sum::<u64>(),
        0
    );
}
