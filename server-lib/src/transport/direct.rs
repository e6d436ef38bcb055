//! A non-blocking send to a socket by its descriptor, from outside the task that owns it: how
//! a broadcast reaches its recipients without waking each one's connection (see
//! `pool::outbox`, which decides when that is allowed and keeps the descriptor valid).

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

/// Sends as much of `bufs` as the socket takes now, without waiting: the count sent (which
/// may be short), or the error (`WouldBlock` when it takes nothing). Never raises `SIGPIPE`.
///
/// One buffer goes out with `send`, several with one `sendmsg`: the socket layer directly,
/// not `writev`'s file layer, which cost 5% of a broadcast's CPU more in `perf`.
///
/// The caller guarantees that `fd` is an open socket for the whole call and that nobody else
/// writes to it meanwhile; a closed (or reused) descriptor would be written to as it is.
pub(crate) fn send_now(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    const FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    loop {
        let n = match bufs {
            // SAFETY: the pointer and length are one live slice; `send` reads at most `len`
            // bytes from it and touches no other memory of ours.
            [one] => unsafe { libc::send(fd, one.as_ptr().cast(), one.len(), FLAGS) },
            _ => {
                // SAFETY: a zeroed `msghdr` is a valid empty one (no name, no control data).
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                // `IoSlice` is ABI-compatible with `iovec` on Unix; `sendmsg` only reads them.
                msg.msg_iov = bufs.as_ptr().cast_mut().cast();
                msg.msg_iovlen = bufs.len() as _;
                // SAFETY: every iovec is one live slice of `bufs`, read at most once.
                unsafe { libc::sendmsg(fd, &msg, FLAGS) }
            }
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn sends_what_the_socket_takes_then_would_block() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut b, _) = listener.accept().unwrap();
        a.set_nonblocking(true).unwrap();
        assert_eq!(
            send_now(a.as_raw_fd(), &[IoSlice::new(b"hello")]).unwrap(),
            5
        );
        let parts = [IoSlice::new(b", "), IoSlice::new(b"world")];
        assert_eq!(send_now(a.as_raw_fd(), &parts).unwrap(), 7);
        let mut buf = [0u8; 12];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello, world");
        // Nobody reads b: the buffers fill and the socket stops taking bytes.
        let chunk = vec![7u8; 1 << 16];
        let mut total = 0usize;
        let err = loop {
            match send_now(a.as_raw_fd(), &[IoSlice::new(&chunk), IoSlice::new(&chunk)]) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
            assert!(total < 1 << 30, "the socket never filled");
        };
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(total > 0);
    }
}
