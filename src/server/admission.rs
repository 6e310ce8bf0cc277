//! Which connections are let in: at most so many open at once, and at most a share of them per
//! client, so that one client holding idle connections cannot exhaust the process's file
//! descriptors and lock everyone else out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// The open connections, counted in all and per client.
pub(super) struct Admission {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_client: usize,
    /// Peers with no share of their own (reverse proxies, whose connections carry many clients).
    unlimited: Vec<IpAddr>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The server has `max_total` open.
    Full,
    /// This client has its share open.
    ClientFull,
}

/// An admitted connection; dropping it frees its place.
pub(super) struct Permit {
    counts: Arc<Mutex<Counts>>,
    client: Option<IpAddr>,
}

impl Admission {
    pub(super) fn new(max_total: usize, max_per_client: usize, unlimited: &[IpAddr]) -> Self {
        Self {
            counts: Arc::default(),
            max_total,
            max_per_client,
            unlimited: unlimited.iter().map(|ip| ip.to_canonical()).collect(),
        }
    }

    /// Lets a connection from `peer` in, or says why not.
    pub(super) fn admit(&self, peer: IpAddr) -> Result<Permit, Refused> {
        let peer = peer.to_canonical();
        let client = (!self.unlimited.contains(&peer)).then(|| client_of(peer));
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.max_total {
            return Err(Refused::Full);
        }
        if let Some(client) = client {
            let open = counts.per_client.entry(client).or_default();
            if *open >= self.max_per_client {
                return Err(Refused::ClientFull);
            }
            *open += 1;
        }
        counts.total += 1;
        Ok(Permit {
            counts: self.counts.clone(),
            client,
        })
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total -= 1;
        if let Some(client) = self.client
            && let Some(open) = counts.per_client.get_mut(&client)
        {
            *open -= 1;
            if *open == 0 {
                counts.per_client.remove(&client);
            }
        }
    }
}

/// The client an address stands for: an IPv4 address, or an IPv6 /64 (the block one subscriber is
/// given, so a client cannot multiply its share by picking addresses within it).
fn client_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_client_has_its_share_and_gets_it_back() {
        let admission = Admission::new(10, 2, &[]);
        let a1 = admission.admit(ip("10.0.0.1")).unwrap();
        let _a2 = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).err(),
            Some(Refused::ClientFull)
        );
        // The same client written as an IPv4-mapped IPv6 address.
        assert_eq!(
            admission.admit(ip("::ffff:10.0.0.1")).err(),
            Some(Refused::ClientFull)
        );
        let _b = admission.admit(ip("10.0.0.2")).unwrap();
        drop(a1);
        let _a3 = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(admission.open(), 3);
    }

    #[test]
    fn the_total_is_capped_whoever_asks() {
        let admission = Admission::new(2, 2, &[ip("10.0.0.9")]);
        let _a = admission.admit(ip("10.0.0.1")).unwrap();
        let b = admission.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(admission.admit(ip("10.0.0.3")).err(), Some(Refused::Full));
        assert_eq!(admission.admit(ip("10.0.0.9")).err(), Some(Refused::Full));
        drop(b);
        let _c = admission.admit(ip("10.0.0.3")).unwrap();
        assert_eq!(admission.open(), 2);
    }

    #[test]
    fn an_ipv6_client_is_its_64_block() {
        let admission = Admission::new(10, 1, &[]);
        let _a = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            admission.admit(ip("2001:db8:1:2:ffff::9")).err(),
            Some(Refused::ClientFull)
        );
        let _b = admission.admit(ip("2001:db8:1:3::1")).unwrap();
    }

    #[test]
    fn trusted_proxies_have_no_share_of_their_own() {
        let admission = Admission::new(10, 1, &[ip("10.0.0.9")]);
        let permits: Vec<_> = (0..5)
            .map(|_| admission.admit(ip("10.0.0.9")).unwrap())
            .collect();
        assert_eq!(admission.open(), 5);
        drop(permits);
        assert_eq!(admission.open(), 0);
    }
}
