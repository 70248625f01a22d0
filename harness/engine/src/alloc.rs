//! The allocator's settings for the chaos binary and the benches, whose global allocator is
//! mimalloc: freed memory is kept for reuse instead of being handed back to the kernel.
//!
//! By default mimalloc (v3, what `libmimalloc-sys` builds) purges (decommits) memory a
//! second after it was freed, and the next allocation there faults it back in, zeroed,
//! often as a 2 MiB transparent huge page. At the driver's rates that was 60,000-85,000
//! page faults in one run of `benches/driver.rs` and a latency p99 of 4-50 ms at a quarter
//! of the saturated rate; with purging off, 1,700 faults and a p99 of 0.66-1.1 ms, seven
//! runs out of seven. A shorter delay (250 ms), purging by reset instead of decommit and no
//! huge pages did not remove the stalls. The cost: a process keeps its peak heap (a run's,
//! or the check of a large history) until it exits. The setting overrides
//! `MIMALLOC_PURGE_DELAY` in the environment.

/// mimalloc v3's `mi_option_purge_delay` (its `mimalloc.h`; the Rust bindings name no
/// constant for it). The tests check it is the option `MIMALLOC_PURGE_DELAY` sets.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never purge freed memory. Call first thing in `main`, before any other thread runs
/// (mimalloc's option calls are not thread-safe).
#[expect(
    unsafe_code,
    reason = "mimalloc's options are set through its C API only"
)]
pub fn keep_freed_memory() {
    // SAFETY: a plain C call with an option id from mimalloc's own header and a value its
    // documentation allows (-1: no purging); made before other threads allocate.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(unsafe_code, reason = "reading mimalloc's option through its C API")]
    fn purge_delay() -> std::ffi::c_long {
        // SAFETY: a plain C call reading one option.
        unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }
    }

    #[test]
    fn keeping_freed_memory_turns_purging_off() {
        keep_freed_memory();
        assert_eq!(purge_delay(), -1);
    }

    /// Run in a child process with `MIMALLOC_PURGE_DELAY` set (by the test below); alone it
    /// has nothing to check.
    #[test]
    fn child_reads_the_purge_delay_from_the_environment() {
        if let Ok(want) = std::env::var("CHAOS_ALLOC_PROBE") {
            assert_eq!(purge_delay().to_string(), want);
        }
    }

    #[test]
    fn the_option_id_is_the_one_mimalloc_purge_delay_sets() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "alloc::tests::child_reads_the_purge_delay_from_the_environment",
                "--nocapture",
            ])
            .env("MIMALLOC_PURGE_DELAY", "4321")
            .env("CHAOS_ALLOC_PROBE", "4321")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "the child ran the probe: {text}");
    }
}
