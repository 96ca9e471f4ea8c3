//! A shard's task (its run loop over one [`Relay`]) and the watchdog's probe of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use videocall_types::{MeetingId, SessionId};

use super::{Command, HostCommand, Outbound, PROBE_INTERVAL, ShardStats, Watchdog};
use crate::bus::{Bus, BusMessage, BusSubscription};
use crate::{InboundError, Output, Relay};

/// Bus messages waiting for a shard task, at most.
const BUS_QUEUE: usize = 64 * 1024;

/// Probes the node task every [`PROBE_INTERVAL`] through its command queue (so a probe waits
/// behind whatever the task has not yet done) and records when it answered.
pub(super) async fn probe(commands: mpsc::WeakSender<Command>, watchdog: Arc<Watchdog>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(commands) = commands.upgrade() else {
            return; // every handle is gone: the node is stopping
        };
        let (reply, answered) = oneshot::channel();
        if commands.send(Command::Probe { reply }).await.is_err() {
            return;
        }
        drop(commands);
        if answered.await.is_err() {
            return;
        }
        let at = watchdog.start.elapsed().as_millis() as u64;
        watchdog.answered_ms.store(at, Ordering::Relaxed);
    }
}

/// How the node task is told to stop: drain first (optional), then shut down.
pub(super) struct Stops {
    pub(super) shutdown: mpsc::Receiver<oneshot::Sender<()>>,
    pub(super) drain: mpsc::Receiver<oneshot::Sender<()>>,
}

pub(super) async fn run(
    mut relay: Relay,
    bus: Arc<dyn Bus>,
    mut commands: mpsc::Receiver<Command>,
    mut stops: Stops,
) {
    let (bus_tx, mut bus_rx) = mpsc::channel::<BusMessage>(BUS_QUEUE);
    let mut sessions: HashMap<SessionId, mpsc::UnboundedSender<Outbound>> = HashMap::new();
    let mut subscriptions: HashMap<MeetingId, BusSubscription> = HashMap::new();
    let mut stopping = false;
    let mut stopped: Option<oneshot::Sender<()>> = None;
    let mut drained: Option<oneshot::Sender<()>> = None;
    loop {
        let timeout = relay.poll_timeout();
        let sleep = async {
            match timeout {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // A shutdown goes before everything still queued.
            biased;
            Some(reply) = stops.shutdown.recv() => {
                if !stopping {
                    stopping = true;
                    relay.handle_shutdown(Instant::now());
                }
                stopped = Some(reply);
            }
            Some(reply) = stops.drain.recv() => {
                relay.handle_drain(Instant::now());
                drained = Some(reply);
            }
            command = commands.recv() => {
                let Some(command) = command else { break };
                handle_command(&mut relay, &mut sessions, command);
                // Take whatever else is already waiting before flushing outputs.
                for _ in 0..256 {
                    match commands.try_recv() {
                        Ok(command) => handle_command(&mut relay, &mut sessions, command),
                        Err(_) => break,
                    }
                }
            }
            Some(message) = bus_rx.recv() => {
                relay.handle_bus(Instant::now(), &message.subject, message.payload);
            }
            () = sleep => relay.handle_timeout(Instant::now()),
        }
        while let Some(output) = relay.poll_output() {
            match output {
                Output::Transmit { session, packet } => {
                    if let Some(tx) = sessions.get(&session) {
                        let _ = tx.send(Outbound::Packet(packet));
                    }
                }
                Output::Publish { subject, packet } => {
                    bus.publish(&subject, packet);
                }
                Output::Subscribe { meeting, subject } => {
                    debug!(%meeting, "subscribing to {subject}");
                    subscriptions.insert(meeting, bus.subscribe(&subject, bus_tx.clone()));
                }
                Output::Unsubscribe { meeting } => {
                    debug!(%meeting, "unsubscribing");
                    subscriptions.remove(&meeting);
                }
                Output::Close { session, reason } => {
                    if let Some(tx) = sessions.remove(&session) {
                        let _ = tx.send(Outbound::Close(reason));
                    }
                }
            }
        }
        if drained.is_some() && relay.drained() {
            // Cancelled leaves are nothing to send, but a leave announced meanwhile (someone
            // who did not come back) must reach the bus before the node says it is done.
            bus.flush().await;
            if let Some(reply) = drained.take() {
                let _ = reply.send(());
            }
        }
        if let Some(reply) = stopped.take() {
            // The leaves are queued on the bus; let it send them before saying done. The task
            // goes on (refusing joins) until the process ends.
            bus.flush().await;
            let _ = reply.send(());
        }
    }
}

fn handle_command(
    relay: &mut Relay,
    sessions: &mut HashMap<SessionId, mpsc::UnboundedSender<Outbound>>,
    command: Command,
) {
    let now = Instant::now();
    match command {
        Command::Join { join, reply } => {
            let result = relay.handle_admit(now, join).map(|id| {
                let (tx, rx) = mpsc::unbounded_channel();
                sessions.insert(id, tx);
                (id, rx)
            });
            if let Err(Ok((id, _))) = reply.send(result) {
                // The caller went away before hearing back.
                sessions.remove(&id);
                relay.handle_leave(now, id);
            }
        }
        Command::Inbound { session, data } => {
            if let Err(e) = relay.handle_inbound(now, session, data) {
                match e {
                    InboundError::UnknownSession => {}
                    e => debug!(%session, "packet discarded: {e}"),
                }
            }
        }
        Command::Transmitted { session, bytes } => relay.handle_transmitted(session, bytes),
        Command::Leave { session } => {
            sessions.remove(&session);
            relay.handle_leave(now, session);
        }
        Command::Metrics { reply } => {
            let _ = reply.send(ShardStats {
                metrics: relay.metrics().clone(),
                sessions: relay.session_count(),
                meetings: relay.meeting_count(),
            });
        }
        Command::Probe { reply } => {
            let _ = reply.send(());
        }
        Command::Host { meeting, action } => match action {
            HostCommand::Remove(user) => relay.handle_remove(now, &meeting, &user),
            HostCommand::AskToMute(user) => relay.handle_ask_to_mute(now, &meeting, &user),
            HostCommand::End => relay.handle_end_meeting(now, &meeting),
        },
    }
}
