//! What the fuzz targets share.

use std::ptr;

/// Makes a stack overflow a finding that libFuzzer saves.
///
/// The targets run under libFuzzer's `main`, so Rust's runtime never sets
/// up its guard-page handler, and libFuzzer's `SIGSEGV` handler would run
/// on the exhausted stack and die before writing the input. This gives the
/// main thread an alternate signal stack and a `SIGSEGV` handler that runs
/// on it and aborts. libFuzzer (which installs its handlers after this)
/// keeps the stack flag and chains to this handler; its `SIGABRT` handler
/// then writes the crashing input like for any other crash.
pub fn report_stack_overflows() {
    const ALT_STACK: usize = 1 << 20;
    // SAFETY: plain libc calls on memory this function maps and never
    // releases (the alternate stack lives as long as the process).
    unsafe {
        let stack = libc::mmap(
            ptr::null_mut(),
            ALT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(stack, libc::MAP_FAILED, "mmap for the alternate signal stack");
        let alt = libc::stack_t { ss_sp: stack, ss_flags: 0, ss_size: ALT_STACK };
        assert_eq!(libc::sigaltstack(&alt, ptr::null_mut()), 0, "sigaltstack");
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_segv as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGSEGV, &action, ptr::null_mut()), 0, "sigaction");
    }
}

extern "C" fn on_segv(_signal: libc::c_int, _info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    const MESSAGE: &[u8] = b"\n==SIGSEGV (a stack overflow, most likely); aborting so that libFuzzer saves the input\n";
    // SAFETY: write(2) and abort(3) are async-signal-safe.
    unsafe {
        libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
        libc::abort();
    }
}
