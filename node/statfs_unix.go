//go:build unix

package node

import "golang.org/x/sys/unix"

// statfsFree is the space available to this (unprivileged) process on dir's filesystem.
func statfsFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
