//go:build linux || darwin || freebsd || netbsd || openbsd

package natsd

import "syscall"

// freeSpace returns the bytes free for unprivileged writers on dir's filesystem.
func freeSpace(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
