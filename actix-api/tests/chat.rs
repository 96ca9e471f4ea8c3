//! Issue #18 through real relays: two `actix-api` nodes on a real `nats-server`, real end-to-end
//! encrypted client cores (alice on node 1, bob on node 2, carol joining node 2 late), and a raw
//! NATS observer recording every byte said on the meeting's subjects. Alice's and bob's chat
//! reaches the other node's client (so it crossed the bus), carol gets the history from the
//! lowest member sealed for her alone, a raised hand is seen — and no byte the relays put on the
//! bus holds any message's text.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use videocall_client::chat::ChatEntry;
use videocall_client::e2ee::{Identity, OsRng};
use videocall_client::native::{Client, NativeConfig, RelayUrls, Update};
use videocall_client::{ClientConfig, Command, Event};
use videocall_testkit::PATIENCE;
use videocall_testkit::nats::NatsServer;
use videocall_testkit::process::{Service, ws_node_on_nats};
use videocall_types::{MeetingId, UserId};

const MEETING: &str = "chat";
/// A subject of the meeting's namespace that no relay serves a session on.
const SENTINEL: &str = "room.chat.sentinel";

/// An `actix-api` node on `nats`, WebSocket only: (process, http port).
fn node_on_nats(nats: &NatsServer) -> (Service, u16) {
    ws_node_on_nats(&nats.url(), &[])
}

/// A real E2EE client and every session event it told.
struct Peer {
    client: Client,
    events: Vec<Event>,
}

impl Peer {
    async fn start(user: &str, http: u16) -> Self {
        let identity = tokio::task::spawn_blocking(|| Identity::generate(&mut OsRng, 2048))
            .await
            .expect("key generation ran")
            .expect("a 2048-bit key");
        let mut native = NativeConfig::with_relays(vec![RelayUrls {
            webtransport_url: None,
            websocket_url: Some(format!("http://127.0.0.1:{http}")),
        }]);
        native.e2ee = Some(identity);
        let config =
            ClientConfig::new(UserId::new(user).unwrap(), MeetingId::new(MEETING).unwrap());
        Self {
            client: Client::start(config, native),
            events: Vec::new(),
        }
    }

    /// Reads updates until `done` holds over the events so far (or panics after PATIENCE).
    async fn until(&mut self, what: &str, done: impl Fn(&[Event]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.events) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.client.next_update()).await {
                Ok(Some(Update::Session(event))) => self.events.push(event),
                Ok(Some(_)) => {}
                Ok(None) => panic!("the client stopped before: {what}"),
                Err(_) => panic!("never {what}: {:?}", self.events),
            }
        }
    }

    fn chats(&self) -> Vec<ChatEntry> {
        chats(&self.events)
    }
}

fn chats(events: &[Event]) -> Vec<ChatEntry> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Chat(entry) => Some(entry.clone()),
            _ => None,
        })
        .collect()
}

/// Whether `peers` peers joined and a safety code was told (our roster, hence our sender key's
/// epoch, is settled: what we seal now is under the key they get).
fn keyed(events: &[Event], peers: usize) -> bool {
    let joined = events
        .iter()
        .filter(|e| matches!(e, Event::PeerJoined { .. }))
        .count();
    joined >= peers
        && events
            .iter()
            .rev()
            .any(|e| matches!(e, Event::SafetyCode(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_chat_crosses_two_nodes_and_the_bus_never_carries_its_text() {
    let nats = NatsServer::start();
    let (_node_1, http_1) = node_on_nats(&nats);
    let (_node_2, http_2) = node_on_nats(&nats);
    let observer = async_nats::connect(nats.url())
        .await
        .expect("NATS connects");
    let mut subscription = observer
        .subscribe(format!("room.{MEETING}.>"))
        .await
        .unwrap();
    observer.flush().await.unwrap();
    let recorded: Arc<Mutex<Vec<u8>>> = Arc::default();
    let log = recorded.clone();
    let (synced_tx, mut synced) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            if message.subject.as_str() == SENTINEL {
                let _ = synced_tx.send(());
            } else {
                log.lock().unwrap().extend_from_slice(&message.payload);
            }
        }
    });

    let mut alice = Peer::start("alice", http_1).await;
    let mut bob = Peer::start("bob", http_2).await;
    alice.until("alice sees bob", |e| keyed(e, 1)).await;
    bob.until("bob sees alice", |e| keyed(e, 1)).await;

    // Messages go out as soon as keys are exchanged; a message sealed before bob holds alice's
    // key waits in bob's session until it arrives.
    alice
        .client
        .handle()
        .command(Command::SendChat("alice-secret-1 over the bus".into()));
    bob.until("bob reads alice", |e| !chats(e).is_empty()).await;
    bob.client
        .handle()
        .command(Command::SendChat("bob-secret-2 replies".into()));
    alice
        .until("alice reads bob", |e| !chats(e).is_empty())
        .await;
    alice.client.handle().command(Command::RaiseHand);
    bob.until("bob sees alice's hand", |e| {
        e.iter()
            .any(|e| matches!(e, Event::Hand { user, raised: true, .. } if user == "alice"))
    })
    .await;

    // Carol joins late on bob's node: the history comes to her sealed, from one member.
    let mut carol = Peer::start("carol", http_2).await;
    carol
        .until("carol gets the history", |e| chats(e).len() >= 2)
        .await;
    carol
        .until("carol sees alice's raised hand", |e| {
            e.iter()
                .any(|e| matches!(e, Event::Hand { user, raised: true, .. } if user == "alice"))
        })
        .await;
    let history = carol.chats();
    let texts: Vec<&str> = history.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts,
        ["alice-secret-1 over the bus", "bob-secret-2 replies"]
    );
    let authors: Vec<&str> = history.iter().map(|e| e.from.as_str()).collect();
    assert_eq!(authors, ["alice", "bob"]);
    assert!(history.iter().all(|e| e.via.is_some()), "{history:?}");
    assert_eq!(alice.chats().len(), 1);
    assert_eq!(bob.chats().len(), 1);

    // Everything the relays published before the clients read it reached the server before;
    // the server delivers to the observer in order, so once our own sentinel comes back the
    // observer holds it all. (The relays drop the sentinel: no session of theirs.)
    observer.publish(SENTINEL, "sync".into()).await.unwrap();
    observer.flush().await.unwrap();
    tokio::time::timeout(PATIENCE, synced.recv())
        .await
        .expect("the sentinel comes back")
        .expect("the observer runs");
    let bytes = recorded.lock().unwrap().clone();
    assert!(
        bytes.len() > 1000,
        "the meeting's traffic crossed the bus ({} bytes)",
        bytes.len()
    );
    for needle in [&b"alice-secret-1"[..], b"bob-secret-2"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} crossed the bus in clear",
            String::from_utf8_lossy(needle)
        );
    }
    for peer in [&alice, &bob, &carol] {
        peer.client.handle().leave().await;
    }
}
