//! Client library: configured with the masters' addresses, finds the leader, follows
//! NOT_THE_LEADER hints and retries transport errors with backoff until a deadline. It
//! learns the current membership from the masters, so masters added later are found.

mod error;
mod master_client;

pub use error::ClientError;
pub use master_client::{ClientOptions, MasterClient};
