//! Names of the crash-consistency failpoints at every step boundary of a reconciliation
//! that changes something (the `fail` crate). They compile to nothing unless the
//! `failpoints` feature is on; tests configure them (`panic` = the operator dies there)
//! and check that reconciling again from the observed state converges with never two
//! membership changes in flight.

/// The objects are applied; membership not yet observed.
pub const AFTER_APPLY: &str = "reconcile::after_apply";
/// A membership action is decided; nothing of it done yet.
pub const BEFORE_ACTION: &str = "execute::before_action";
/// The leader handed leadership away; the member it was is not yet removed.
pub const AFTER_STEP_DOWN: &str = "execute::after_step_down";
/// A stuck master's claim is deleted; its pod not yet.
pub const AFTER_CLAIM_DELETE: &str = "execute::after_claim_delete";
/// The action is done (member added or removed, StatefulSet resized, pod deleted).
pub const AFTER_ACTION: &str = "execute::after_action";
/// The action is done and published as an Event; the status is not yet written.
pub const BEFORE_STATUS: &str = "reconcile::before_status";

/// Every failpoint, in the order a reconciliation passes them.
pub const ALL: &[&str] =
    &[AFTER_APPLY, BEFORE_ACTION, AFTER_STEP_DOWN, AFTER_CLAIM_DELETE, AFTER_ACTION, BEFORE_STATUS];
