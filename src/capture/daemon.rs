//! Process-level parts of a long-running live capture: signals and the
//! privilege drop.
//!
//! Signals only set flags (the one thing a handler may safely do); the
//! capture threads poll [`STOP`] at least every `iface::POLL_MS`, and the
//! decoder thread polls [`take_hup`]. A second SIGINT/SIGTERM while stopping
//! exits at once (status 2), for a stop that hangs.

use std::ffi::CString;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

/// Set by SIGINT/SIGTERM (or when the output fails): stop capturing.
pub static STOP: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        HUP.store(true, Ordering::SeqCst);
    } else if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(2) };
    }
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP.
pub fn install_signal_handlers() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a handler that only stores atomics.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            bail!(
                "cannot install signal handler: {}",
                io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// True once per SIGHUP received since the last call.
pub fn take_hup() -> bool {
    HUP.swap(false, Ordering::SeqCst)
}

pub fn is_root() -> bool {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Switches to `user` and its primary group (supplementary groups cleared),
/// for good: checks that root cannot be regained. Returns (uid, gid).
pub fn drop_privileges(user: &str) -> Result<(u32, u32)> {
    let Ok(name) = CString::new(user) else {
        bail!("--user {user:?}: not a user name");
    };
    // SAFETY: getpwnam_r writes into our buffers; `found` is checked.
    let (uid, gid) = unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc != 0 || found.is_null() {
            bail!("--user {user}: no such user");
        }
        (pwd.pw_uid, pwd.pw_gid)
    };
    let fail = |what: &str| -> anyhow::Error {
        anyhow::anyhow!(
            "--user {user}: {what} failed: {}",
            io::Error::last_os_error()
        )
    };
    // SAFETY: plain system calls on integers.
    unsafe {
        if libc::setgroups(1, &gid) != 0 {
            return Err(fail("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(fail("setuid"));
        }
        if uid != 0 && libc::setuid(0) == 0 {
            bail!("--user {user}: root could be regained after setuid; refusing to run");
        }
    }
    Ok((uid, gid))
}
