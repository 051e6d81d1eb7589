package forward

import (
	"crypto/tls"
	"syscall"
)

// rawConn returns pc's socket and the peek alive runs on it, made once
// per connection so that the check allocates nothing per request.
func rawConn(pc *pconn) (syscall.RawConn, func(fd uintptr) bool) {
	c := pc.c
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if uc, ok := c.(*upstreamConn); ok {
		c = uc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, nil
	}
	var buf [1]byte
	return rc, func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read yet: open. EOF (n == 0), stray bytes or an error
		// such as ECONNRESET: not reusable.
		pc.peeked = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true // never wait
	}
}

// alive reports whether an idle connection is still open: a non-blocking
// MSG_PEEK sees EOF (the target closed it) or unexpected bytes (nothing
// may arrive on an idle HTTP/1.1 connection) without consuming anything.
func alive(pc *pconn) bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	if pc.raw == nil {
		return true
	}
	pc.peeked = false
	if err := pc.raw.Read(pc.peek); err != nil {
		return false
	}
	return pc.peeked
}
