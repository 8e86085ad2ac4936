//! Keeping glibc's allocator lean: the operator's heap is small but bursty (list responses,
//! 100 reconciles at once), and glibc kept every worker thread's arena at its high-water
//! mark (two arenas of 12-13 MiB each with ~70 clusters, most of it free).

use std::time::Duration;

/// How often freed heap pages are returned to the kernel.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(30);

/// At most two malloc arenas (glibc's default is eight per core), so freed memory is
/// shared by the threads instead of stranded in one arena each. Call before the runtime
/// starts its threads.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Return the free pages of every arena to the kernel.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases memory malloc does not use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trim every [`TRIM_INTERVAL`] until the process ends.
pub async fn trim_periodically() {
    let mut ticks = tokio::time::interval(TRIM_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        trim();
    }
}
