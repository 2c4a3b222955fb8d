//! Seeds the randomness the code under test draws behind the simulation's back.
//!
//! std's `HashMap` keys (`RandomState`) and tokio's `select!` branch order (each runtime's RNG
//! is seeded from a `RandomState` hash) come from the OS through libc's `getrandom`, as do the
//! `rand` crate's thread RNG (openraft) and tokio's. This binary defines `getrandom` itself, so
//! std's weak reference and the `getrandom` crate bind to it instead of to libc: on a thread
//! that called [`seed_this_thread`] it returns a stream drawn from the run's seed; anywhere
//! else it asks the kernel as usual.
//!
//! A run therefore executes on a fresh thread seeded before it creates anything (std keeps
//! its hash keys per thread from their first use), in a fresh process (tokio hashes a
//! process-wide counter into every runtime's seed, so runs must not share a process).
//!
//! Linux with glibc only; elsewhere the symbol is not defined and those sources stay random.

use std::cell::RefCell;

thread_local! {
    static STREAM: RefCell<Option<fastrand::Rng>> = const { RefCell::new(None) };
}

/// Makes every `getrandom` call on this thread draw from `seed` from now on.
pub fn seed_this_thread(seed: u64) {
    // Distinct from the streams the harness draws from the same seed.
    const SALT: u64 = 0x5eed_0f7a_5c1e_5500;
    STREAM.with(|s| *s.borrow_mut() = Some(fastrand::Rng::with_seed(seed ^ SALT)));
}

/// Fills `buf` from this thread's seeded stream; `false` if the thread is not seeded.
fn fill_seeded(buf: &mut [u8]) -> bool {
    STREAM
        .try_with(|s| match s.try_borrow_mut() {
            Ok(mut stream) => match stream.as_mut() {
                Some(rng) => {
                    rng.fill(buf);
                    true
                }
                None => false,
            },
            Err(_) => false,
        })
        .unwrap_or(false)
}

/// libc's `getrandom(2)` wrapper, interposed.
///
/// # Safety
/// Same contract as libc's: `buf` points to `buflen` writable bytes.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[no_mangle]
pub unsafe extern "C" fn getrandom(
    buf: *mut libc::c_void,
    buflen: libc::size_t,
    flags: libc::c_uint,
) -> libc::ssize_t {
    if buflen > 0 {
        // SAFETY: the caller passes `buflen` writable bytes at `buf`.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), buflen) };
        if fill_seeded(bytes) {
            return buflen as libc::ssize_t;
        }
    }
    // SAFETY: forwards the caller's arguments to the kernel unchanged.
    unsafe { libc::syscall(libc::SYS_getrandom, buf, buflen, flags) as libc::ssize_t }
}
