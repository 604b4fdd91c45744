//! Concurrency shares: at most N requests of one tenant in flight at a time, so a
//! tenant that floods a model cannot take every place in its queue while others wait.
//!
//! Complements [`crate::ratelimit`], which bounds rates over a minute or a day; this
//! bounds what a tenant holds at one instant. Like the rate limits it is per process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use types::TenantName;

/// In-flight counts per tenant against one shared cap.
#[derive(Debug, Clone)]
pub struct TenantSlots {
    max_per_tenant: usize,
    in_flight: Arc<Mutex<HashMap<TenantName, usize>>>,
}

/// A place taken by one request; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    tenant: TenantName,
    in_flight: Arc<Mutex<HashMap<TenantName, usize>>>,
}

impl TenantSlots {
    /// `max_per_tenant` of 0 is taken as 1.
    pub fn new(max_per_tenant: usize) -> Self {
        Self {
            max_per_tenant: max_per_tenant.max(1),
            in_flight: Arc::default(),
        }
    }

    pub fn max_per_tenant(&self) -> usize {
        self.max_per_tenant
    }

    /// Takes a place for `tenant`, or `None` when it already has the most allowed.
    pub fn try_acquire(&self, tenant: &TenantName) -> Option<Slot> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let count = in_flight.entry(tenant.clone()).or_default();
        if *count >= self.max_per_tenant {
            return None;
        }
        *count += 1;
        Some(Slot {
            tenant: tenant.clone(),
            in_flight: self.in_flight.clone(),
        })
    }

    /// Requests of `tenant` in flight now.
    pub fn in_flight(&self, tenant: &TenantName) -> usize {
        let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.get(tenant).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = in_flight.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tenant_gets_its_own_share_back_on_drop() {
        let slots = TenantSlots::new(2);
        let (a, b) = (
            TenantName::try_from("a").unwrap(),
            TenantName::try_from("b").unwrap(),
        );
        let first = slots.try_acquire(&a).unwrap();
        let _second = slots.try_acquire(&a).unwrap();
        assert!(slots.try_acquire(&a).is_none());
        let _other = slots.try_acquire(&b).expect("b is not held back by a");
        drop(first);
        assert_eq!(slots.in_flight(&a), 1);
        assert!(slots.try_acquire(&a).is_some());
        assert_eq!(slots.in_flight(&a), 1, "the slot taken above was dropped");
    }
}
