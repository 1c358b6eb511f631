//! Link notifications (rtnetlink group `RTNLGRP_LINK`): the kernel tells the agent when a
//! link appears, changes or goes away, so an endpoint interface made outside etcd (a VM's
//! tap by libvirt, a veth by the CNI plugin) is wired within milliseconds of appearing
//! instead of at the next retry or resync. Which names matter is decided by the agent loop
//! ([`crate::ifname::is_local_interface`]); this only reports.
//!
//! What has bitten us / what to know:
//! - The kernel does not wait for a multicast reader: when the socket's buffer fills,
//!   notifications are dropped and the next read fails with `ENOBUFS`, which netlink-proto
//!   hands on as an `Overrun` message. That is [`LinkNotice::Lost`]: anything may have
//!   changed, read everything again.
//! - The socket belongs to the namespace it was opened in (`--netns`: opened on a thread
//!   inside it, like the route socket).
//! - `RTM_NEWLINK` also comes for every flag, carrier or MTU change (our own `set up`
//!   included); a round for a link that needs nothing is a no-op.

use futures::StreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::MulticastGroup;
use tokio::sync::mpsc;

use super::netns::run_in;
use crate::schedule::backoff;

/// What the link watch tells the agent loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkNotice {
    /// Subscribed (`true`): from now on every link change is told, so routes waiting for
    /// an interface need no polling. Not subscribed (`false`): the agent must poll.
    /// Changes before a subscription are unknown: every `Live` means "read everything".
    Live(bool),
    /// A link of this name appeared, changed or went away.
    Changed(String),
    /// Notifications were dropped (the socket overran): anything may have changed.
    Lost,
}

/// Watches link changes in `netns` (or the agent's own namespace) from a task of its own,
/// reopening the subscription with a backoff when it fails. The task ends when the
/// receiver is dropped.
pub fn watch(netns: Option<String>) -> mpsc::Receiver<LinkNotice> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(watch_loop(netns, tx));
    rx
}

async fn watch_loop(netns: Option<String>, tx: mpsc::Sender<LinkNotice>) {
    let mut failures = 0u32;
    loop {
        let runtime = tokio::runtime::Handle::current();
        let opened = run_in(netns.as_deref(), move || {
            let _entered = runtime.enter();
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
        });
        match opened {
            Ok(Ok((connection, _handle, mut messages))) => {
                let connection = tokio::spawn(connection);
                tracing::debug!("watching link notifications");
                failures = 0;
                let mut open = tx.send(LinkNotice::Live(true)).await.is_ok();
                while open {
                    let Some((message, _)) = messages.next().await else {
                        break;
                    };
                    let notice = match message.payload {
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link))
                        | NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                            link_name(&link).map(LinkNotice::Changed)
                        }
                        NetlinkPayload::Overrun(_) => Some(LinkNotice::Lost),
                        _ => None,
                    };
                    if let Some(notice) = notice {
                        open = tx.send(notice).await.is_ok();
                    }
                }
                connection.abort();
                if !open {
                    return;
                }
                tracing::warn!("link notifications ended; reopening");
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot subscribe to link notifications; endpoint interfaces are polled")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to link notifications in the namespace; endpoint interfaces are polled")
            }
        }
        failures += 1;
        if tx.send(LinkNotice::Live(false)).await.is_err() {
            return;
        }
        tokio::time::sleep(backoff(failures)).await;
    }
}

fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}
