//! A cache hint: asks the CPU to start loading a line that a loop over thousands of clients
//! will touch a few steps from now (the fan-out's pushes, the flush's sends), so the touch
//! finds it in cache instead of waiting for memory.

/// Starts loading the cache line holding `p` (x86_64; nothing elsewhere). Any address will
/// do: a prefetch reads nothing into the program and never faults, so a stale or dangling
/// one costs a wasted load at worst.
#[inline]
pub(crate) fn line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: `prefetch` is a hint, not an access: it never faults, whatever the address,
        // and SSE is part of every x86_64 target.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
