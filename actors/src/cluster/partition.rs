//! Which partition an entity belongs to.
//!
//! The hash is FNV-1a 32 of the stream id modulo the partition count — the function nats-server's
//! `partition(n, …)` subject mapping uses — so the mapping can move into the server's
//! configuration later without moving any entity. It is computed by the sender, so no server
//! configuration is needed today.

/// The partition of the stream `stream_id` (e.g. `book-<uuid>`) among `partitions`.
pub fn partition_of(stream_id: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in stream_id.as_bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_32() {
        // Reference values of FNV-1a 32.
        assert_eq!(partition_of("", u32::MAX), 0x811c_9dc5);
        assert_eq!(partition_of("a", u32::MAX), 0xe40c_292c);
        assert_eq!(partition_of("foobar", u32::MAX), 0xbf9c_f968);
    }

    #[test]
    fn entities_spread_over_partitions() {
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[partition_of(&format!("book-{}", uuid::Uuid::new_v4()), 16) as usize] += 1;
            let _ = i;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
