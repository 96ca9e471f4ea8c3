//! `chat`: join, send each line of stdin as a chat message, print what others say.
//!
//! Lines starting with `/` are commands: `/hand` raises our hand, `/lower` lowers it,
//! `/react <emoji>` reacts, `/lower-hand <user>` (hosts) lowers someone's hand. Everything else
//! is a message. Received messages print as `<user>: <text>` (history from before we joined as
//! `<user>: <text> (history via <member>)`), hands and reactions as `* <user> …` lines. At the end
//! of stdin the session leaves (after what was queued is written).

use tokio::sync::mpsc;
use videocall_client::native::Update;
use videocall_client::{Command, Event};

use crate::args::ChatArgs;
use crate::join::{join, report_e2ee, shutdown_signal};

/// Runs `chat` until stdin ends, Ctrl-C or SIGTERM.
pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let (mut client, session, transport) = join(&args.connect).await?;
    println!(
        "joined meeting {} as session {session} via {transport}",
        args.connect.identity()?.1
    );
    let handle = client.handle().clone();
    // stdin is read on a thread of its own: tokio's blocking stdin would hold the runtime's
    // shutdown, and lines are few.
    let (lines_tx, mut lines) = mpsc::channel::<String>(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let outcome = loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    if let Some(command) = command(&line) {
                        handle.command(command);
                    }
                }
                None => break Ok(()),
            },
            update = client.next_update() => match update {
                Some(Update::Session(event)) => {
                    if let Some(outcome) = show(&event) {
                        break outcome;
                    }
                }
                Some(Update::CommandRefused(error)) => eprintln!("videocall-cli: {error}"),
                Some(_) => {}
                None => break Err(anyhow::anyhow!("the client stopped")),
            },
            _ = &mut signal => break Ok(()),
        }
    };
    handle.leave().await;
    outcome
}

/// The session command a line of stdin asks for (`None`: a blank line).
pub fn command(line: &str) -> Option<Command> {
    let line = line.trim();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    Some(match word {
        "" => return None,
        "/hand" => Command::RaiseHand,
        "/lower" => Command::LowerHand,
        "/react" => Command::React(rest.to_owned()),
        "/lower-hand" => Command::LowerHandOf(rest.to_owned()),
        _ => Command::SendChat(line.to_owned()),
    })
}

/// Prints what `event` means for the chat; `Some` when the session is over.
fn show(event: &Event) -> Option<anyhow::Result<()>> {
    match event {
        Event::Chat(entry) => match &entry.via {
            Some(via) => println!("{}: {} (history via {via})", entry.from, entry.text),
            None => println!("{}: {}", entry.from, entry.text),
        },
        Event::Hand { user, raised, .. } => {
            let what = if *raised { "raised" } else { "lowered" };
            println!("* {user} {what} their hand");
        }
        Event::Reaction { user, emoji, .. } => println!("* {user} reacted {emoji}"),
        Event::HandLoweredByHost => println!("* a host lowered your hand"),
        Event::PeerJoined { user, session } => println!("joined {user} session {session}"),
        Event::PeerLeft { user, session } => println!("left {user} session {session}"),
        Event::Ended(why) => {
            return Some(Err(anyhow::anyhow!("the relay ended the session: {why}")));
        }
        Event::Disconnected { reason, retry_in } => eprintln!(
            "videocall-cli: connection lost ({reason}); reconnecting in {:?}",
            retry_in.unwrap_or_default()
        ),
        event => report_e2ee(event),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_messages_or_commands() {
        assert_eq!(
            command("  hello there "),
            Some(Command::SendChat("hello there".into()))
        );
        assert_eq!(command("/hand"), Some(Command::RaiseHand));
        assert_eq!(command("/lower"), Some(Command::LowerHand));
        assert_eq!(command("/react 👍"), Some(Command::React("👍".into())));
        assert_eq!(
            command("/lower-hand bob"),
            Some(Command::LowerHandOf("bob".into()))
        );
        assert_eq!(command("   "), None);
    }
}
