//! Listening sockets, for the host's API and the chaos proxy alike.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Binds a listening socket with room for `backlog` connections waiting to be accepted: the
/// usual 128 makes a burst of new clients wait a second for a SYN retransmit.
pub fn bind(address: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}
