//go:build !unix

package node

import "errors"

func statfsFree(string) (int64, error) {
	return 0, errors.New("node: free disk space is not read on this platform")
}
