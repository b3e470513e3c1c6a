//! [`RefCell`]: `core::cell::RefCell` without a panic location at every borrow.
//!
//! core's `borrow`/`borrow_mut` are `#[track_caller]`: each of the SDK's ~180 call sites
//! carries its own `Location` (file, line, column) for a panic message the bundle's
//! trapping panic handler never prints, plus the message's formatting code. Here a
//! conflicting borrow — a bug, never an input — goes to one shared function instead:
//! in the bundle it traps (`RuntimeError: unreachable`, as any panic there does), in
//! other builds it panics with a message.

use core::cell::{Ref, RefMut};

#[derive(Default)]
pub struct RefCell<T>(core::cell::RefCell<T>);

impl<T> RefCell<T> {
    pub const fn new(value: T) -> Self {
        RefCell(core::cell::RefCell::new(value))
    }

    #[inline]
    pub fn borrow(&self) -> Ref<'_, T> {
        match self.0.try_borrow() {
            Ok(r) => r,
            Err(_) => conflict(),
        }
    }

    #[inline]
    pub fn borrow_mut(&self) -> RefMut<'_, T> {
        match self.0.try_borrow_mut() {
            Ok(r) => r,
            Err(_) => conflict(),
        }
    }
}

/// A borrow that conflicts with one still held.
#[cold]
#[inline(never)]
fn conflict() -> ! {
    #[cfg(all(feature = "bundle", not(feature = "std"), target_family = "wasm"))]
    core::arch::wasm32::unreachable();
    #[cfg(not(all(feature = "bundle", not(feature = "std"), target_family = "wasm")))]
    panic!("meshwire: a RefCell was borrowed while already borrowed (a bug in the SDK)");
}
