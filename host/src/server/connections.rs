//! The client connections the API holds open: at most `http.max_connections` in all and
//! `http.max_connections_per_address` from one address.
//!
//! Connections are cheap to open and cost the host a file descriptor each, so whoever opens
//! many and sends nothing could otherwise keep every later client, `/healthz` and callers with
//! a token alike, waiting. Instead, when every slot is taken, a newcomer takes the slot of the
//! connection that has gone longest without a request in progress (one that never sent a
//! request first): idle connections cannot keep anyone out. Only when every connection is busy
//! answering a request is a newcomer refused, with 503.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Why a new connection gets no slot.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its address already holds `max_connections_per_address`.
    Address,
    /// Every slot holds a connection with a request in progress.
    Full,
}

/// Every open client connection.
pub struct Connections {
    table: Mutex<Table>,
    max_total: usize,
    max_per_address: u32,
    epoch: Instant,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<Connection>>,
    per_address: HashMap<IpAddr, u32>,
}

/// One client connection: whether a request is in progress on it, and since when it is idle.
pub struct Connection {
    id: u64,
    peer: IpAddr,
    in_flight: AtomicU32,
    served: AtomicBool,
    /// Milliseconds since [`Connections::epoch`] at which it last became idle.
    idle_since_ms: AtomicU64,
    epoch: Instant,
    evicted: CancellationToken,
}

impl Connections {
    pub fn new(max_total: u32, max_per_address: u32) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::new(Table::default()),
            max_total: max_total as usize,
            max_per_address,
            epoch: Instant::now(),
        })
    }

    /// A slot for a connection from `peer`, made if need be by closing the connection idle
    /// longest; released when the slot is dropped.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        let mut table = self.table.lock();
        if table.per_address.get(&peer).copied().unwrap_or(0) >= self.max_per_address {
            return Err(Refusal::Address);
        }
        if table.open.len() >= self.max_total {
            let victim = table
                .open
                .values()
                .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|c| (c.served.load(Ordering::Relaxed), c.idle_since_ms.load(Ordering::Relaxed)))
                .cloned()
                .ok_or(Refusal::Full)?;
            table.remove(&victim);
            victim.evicted.cancel();
        }
        table.next_id += 1;
        let connection = Arc::new(Connection {
            id: table.next_id,
            peer,
            in_flight: AtomicU32::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(self.millis()),
            epoch: self.epoch,
            evicted: CancellationToken::new(),
        });
        table.open.insert(connection.id, connection.clone());
        *table.per_address.entry(peer).or_insert(0) += 1;
        Ok(Slot { connections: self.clone(), connection })
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Table {
    /// Forgets `connection` if it is still here (an evicted one already is not).
    fn remove(&mut self, connection: &Connection) {
        if self.open.remove(&connection.id).is_none() {
            return;
        }
        if let Some(count) = self.per_address.get_mut(&connection.peer) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&connection.peer);
            }
        }
    }
}

/// A connection's place in [`Connections`], held for as long as it is open.
pub struct Slot {
    connections: Arc<Connections>,
    connection: Arc<Connection>,
}

impl Slot {
    pub fn connection(&self) -> Arc<Connection> {
        self.connection.clone()
    }

    /// Resolves when another connection took this one's place.
    pub async fn evicted(&self) {
        self.connection.evicted.cancelled().await;
    }

    /// Resolves when `limit` has passed and no request has arrived: never once one has.
    pub async fn silent_for(&self, limit: Duration) {
        tokio::time::sleep(limit).await;
        if self.connection.served.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.table.lock().remove(&self.connection);
    }
}

impl Connection {
    /// Marks a request in progress until the returned guard is dropped (with the response's
    /// body, so a long event stream counts as busy).
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }
}

/// A request in progress on a connection.
pub struct Busy(Arc<Connection>);

impl Drop for Busy {
    fn drop(&mut self) {
        let idle_since = u64::try_from(self.0.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(idle_since, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_gets_its_share_and_no_more() {
        let connections = Connections::new(10, 2);
        let held = [connections.admit(address(1)).unwrap(), connections.admit(address(1)).unwrap()];
        assert_eq!(connections.admit(address(1)).err(), Some(Refusal::Address));
        assert!(connections.admit(address(2)).is_ok());
        drop(held);
        assert!(connections.admit(address(1)).is_ok(), "closed connections give their slots back");
    }

    #[test]
    fn a_newcomer_takes_the_place_of_a_silent_connection_before_a_served_one() {
        let connections = Connections::new(2, 10);
        let served = connections.admit(address(1)).unwrap();
        drop(served.connection().begin());
        let silent = connections.admit(address(2)).unwrap();
        let newcomer = connections.admit(address(3)).unwrap();
        assert!(silent.connection.evicted.is_cancelled());
        assert!(!served.connection.evicted.is_cancelled());
        drop(silent);
        assert_eq!(connections.table.lock().open.len(), 2, "the evicted slot is not released twice");
        drop(newcomer);
    }

    #[test]
    fn busy_connections_are_never_evicted() {
        let connections = Connections::new(1, 10);
        let busy = connections.admit(address(1)).unwrap();
        let request = busy.connection().begin();
        assert_eq!(connections.admit(address(2)).err(), Some(Refusal::Full));
        drop(request);
        assert!(connections.admit(address(2)).is_ok());
        assert!(busy.connection.evicted.is_cancelled());
    }
}
