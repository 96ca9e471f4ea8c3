//! Per-peer fps, bitrate, decode queue and drops; RTT, transport, congestion and what our camera
//! sends (adaptive quality).

use yew::prelude::*;

use crate::state::MeetingState;

#[derive(Properties, PartialEq)]
pub(crate) struct DiagnosticsProps {
    pub(crate) state: MeetingState,
}

#[function_component(Diagnostics)]
pub(crate) fn diagnostics(props: &DiagnosticsProps) -> Html {
    let s = &props.state;
    html! {
        <section class="diagnostics" id="diagnostics">
            <h2>{"Diagnostics"}</h2>
            <p>
                {format!("Transport: {} · RTT: {} · Congestion signals: {}",
                    s.transport.map(|t| t.label()).unwrap_or("—"),
                    s.rtt_ms.map(|r| format!("{r:.1} ms")).unwrap_or_else(|| "—".into()),
                    s.congestion_events)}
            </p>
            if let Some(q) = &s.send_quality {
                <p id="send-quality" data-rung={q.rung.to_string()} data-steps-down={q.steps_down.to_string()}
                    data-steps-up={q.steps_up.to_string()}>
                    {format!("Sending {}×{} at {} fps, {} kbit/s (rung {} of 5: {}; {} down, {} up)",
                        q.width, q.height, q.fps, q.kbps, q.rung + 1, q.reason, q.steps_down, q.steps_up)}
                </p>
            }
            <table>
                <tr><th>{"Peer"}</th><th>{"fps"}</th><th>{"kbit/s"}</th><th>{"decode queue"}</th><th>{"dropped"}</th></tr>
                { for s.peers.iter().map(|(session, p)| html! {
                    <tr key={session.get()}>
                        <td>{p.user.clone()}</td>
                        <td>{format!("{:.1}", p.fps)}</td>
                        <td>{format!("{:.0}", p.kbps)}</td>
                        <td>{p.decode_queue}</td>
                        <td>{p.dropped}</td>
                    </tr>
                }) }
            </table>
        </section>
    }
}
