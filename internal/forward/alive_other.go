//go:build !linux

package forward

import "syscall"

func rawConn(*pconn) (syscall.RawConn, func(uintptr) bool) { return nil, nil }

// alive cannot peek without blocking here; the retry on a stale reused
// connection (roundTrip) covers the race instead.
func alive(*pconn) bool { return true }
