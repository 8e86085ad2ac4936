//! The one test kit of the workspace, used by the tests of `kudu` (`tests/`), of the
//! operator (`operator/tests/`) and of the local control plane (`e2e/tests/`):
//!
//! - [`Process`]: a real child process with its output in a log file, dying with the test
//!   (`PR_SET_PDEATHSIG`), and the faults tests inject: kill -9, SIGTERM, SIGSTOP/SIGCONT,
//!   restart, and wiping its data directory;
//! - [`free_addr`]: a free `127.0.0.x:port`, a random loopback IP per call so parallel
//!   tests stay apart;
//! - [`wait_for`] and [`eventually`]: polling with a deadline, never fixed sleeps;
//! - [`workspace_bin`]: a binary of the workspace build (`kudu`, `kudu-operator`, ...).

mod addr;
mod bin;
mod process;
mod wait;

pub use addr::free_addr;
pub use bin::workspace_bin;
pub use process::Process;
pub use wait::{WAIT, eventually, wait_for};
