//! Free loopback addresses.

use std::net::TcpListener;

/// A free `127.0.0.x:port` address (bind port 0 on a random `127.0.0.2-251`, read it, drop
/// the listener); a random IP per call keeps parallel tests apart even when a port is
/// reused.
pub fn free_addr() -> String {
    let mut seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    loop {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let ip = format!("127.0.0.{}", 2 + (seed >> 16) % 250);
        if let Ok(listener) = TcpListener::bind(format!("{ip}:0"))
            && let Ok(addr) = listener.local_addr()
        {
            return addr.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_loopback_and_bindable() {
        let addr = super::free_addr();
        assert!(addr.starts_with("127.0.0."), "{addr}");
        std::net::TcpListener::bind(&addr).expect("still free");
    }
}
