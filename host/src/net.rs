//! Listening sockets, and the file descriptors they and their connections use, for the host's
//! API and the chaos proxy alike.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The soft limit is raised no further than this when the hard one is unlimited: Linux refuses
/// a soft limit above `fs.nr_open`, whose default this is.
const UNLIMITED_CEILING: u64 = 1 << 20;

/// Binds a listening socket with room for `backlog` connections waiting to be accepted: the
/// usual 128 makes a burst of new clients wait a second for a SYN retransmit.
pub fn bind(address: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}

/// The process's limit on open file descriptors, before and after [`raise_descriptor_limit`].
#[derive(Debug, Clone, Copy)]
pub struct DescriptorLimit {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit in effect now: what the process may open.
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft limit on open file descriptors up to the hard limit: every client
/// connection, outbound socket and store file is one, and the usual soft limit of 1,024 would
/// stop the process long before its configured limits do. A refusal leaves the limit as it was.
pub fn raise_descriptor_limit() -> std::io::Result<DescriptorLimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    let target = if limit.rlim_max == libc::RLIM_INFINITY { UNLIMITED_CEILING } else { limit.rlim_max };
    if before != libc::RLIM_INFINITY && before < target {
        let raised = libc::rlimit { rlim_cur: target, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid rlimit, only read by the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } != 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!(%error, soft = before, hard = limit.rlim_max, "cannot raise the file-descriptor limit");
        } else {
            limit.rlim_cur = target;
        }
    }
    Ok(DescriptorLimit { before, soft: limit.rlim_cur, hard: limit.rlim_max })
}
